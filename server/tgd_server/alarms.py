"""Alarm operations shared by the REST API and the console: read, acknowledge, close."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import events
from .ingest import add_timeline, alarm_summary
from .models import Alarm, AlarmEvent, Device, Position, User, utcnow


class AlarmError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def _iso(value):
    return value.isoformat() if value else None


def get_alarm(session: Session, alarm_id: int, for_update: bool = False) -> Alarm:
    query = select(Alarm).where(Alarm.id == alarm_id)
    if for_update:
        query = query.with_for_update()
    alarm = session.scalars(query).one_or_none()
    if alarm is None:
        raise AlarmError(404, "not_found", f"no alarm {alarm_id}")
    return alarm


def acknowledge(session: Session, alarm_id: int, user: User) -> Alarm:
    """A police operator took the alarm; the handset learns it in its next answer."""
    alarm = get_alarm(session, alarm_id, for_update=True)
    if alarm.state == "closed":
        raise AlarmError(409, "closed", "the alarm is closed")
    if alarm.state == "received":
        alarm.state = "acknowledged"
        alarm.acknowledged_at = utcnow()
        alarm.acknowledged_by = user.id
        alarm.updated_at = alarm.acknowledged_at
        add_timeline(session, alarm, "console", "acknowledged", f"by {user.username}")
    return alarm


def close(session: Session, alarm_id: int, user: User, note: str) -> Alarm:
    if not isinstance(note, str) or len(note) > 4000:
        raise AlarmError(400, "bad_value", "note must be a text of at most 4000 characters")
    alarm = get_alarm(session, alarm_id, for_update=True)
    if alarm.state != "closed":
        alarm.state = "closed"
        alarm.closed_at = utcnow()
        alarm.closed_by = user.id
        alarm.close_note = note
        alarm.updated_at = alarm.closed_at
        add_timeline(session, alarm, "console", "closed", f"by {user.username}: {note}"[:1000])
    return alarm


def publish_change(alarm: Alarm, device: Device) -> None:
    """After commit: tell the consoles."""
    events.publish({"type": "alarm.updated", "ingested_at": time.time(), "channel": "console",
                    **alarm_summary(alarm, device)})


def alarm_json(alarm: Alarm) -> dict:
    return {
        "id": alarm.id, "device_id": alarm.device_id, "aid": alarm.aid, "state": alarm.state,
        "test": alarm.test, "first_channel": alarm.first_channel,
        "triggered_at": _iso(alarm.triggered_at), "created_at": _iso(alarm.created_at),
        "updated_at": _iso(alarm.updated_at), "call_state": alarm.call_state,
        "sms_state": alarm.sms_state, "acknowledged_at": _iso(alarm.acknowledged_at),
        "closed_at": _iso(alarm.closed_at), "close_note": alarm.close_note,
        "notes": alarm.notes,
    }


def position_json(position: Position) -> dict:
    return {
        "id": position.id, "lat": position.lat, "lon": position.lon, "acc_m": position.acc_m,
        "method": position.method, "fix_at": _iso(position.fix_at),
        "received_at": _iso(position.received_at), "channel": position.channel,
    }


def timeline_json(entry: AlarmEvent) -> dict:
    return {"at": _iso(entry.at), "channel": entry.channel, "kind": entry.kind,
            "detail": entry.detail}


def positions_of(session: Session, alarm_ids: list[int]) -> dict[int, list[Position]]:
    by_alarm: dict[int, list[Position]] = {i: [] for i in alarm_ids}
    if not alarm_ids:
        return by_alarm
    rows = session.scalars(
        select(Position).where(Position.alarm_id.in_(alarm_ids))
        .order_by(Position.received_at, Position.id)
    ).all()
    for row in rows:
        by_alarm[row.alarm_id].append(row)
    return by_alarm


def timeline_of(session: Session, alarm_id: int) -> list[AlarmEvent]:
    return list(session.scalars(
        select(AlarmEvent).where(AlarmEvent.alarm_id == alarm_id)
        .order_by(AlarmEvent.at, AlarmEvent.id)
    ).all())
