"""Read the database into plain view objects for the templates (no Flask here).

Times become Unix seconds (the page scripts show ages from them); a case is only
loaded when the caller says the viewer may see it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..models import Alarm, AlarmEvent, AuditLog, Case, Device, InboundSms, Position, User
from . import phone
from . import strings_fr as t

DATA_CHANNELS = ("http", "mqtt", "data")
SILENT_AFTER_INTERVALS = 2.5
STALE_DEVICE_FIX_S = 24 * 3600  # a handset at rest reports its last fix with each heartbeat


def epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


@dataclass
class CaseView:
    id: int
    reference: str
    name: str
    address: str
    notes: str


@dataclass
class FixView:
    method: str
    lat: float
    lon: float
    accuracy_m: int | None
    fix_time: float | None  # when the fix was taken (device), else when received
    received_at: float | None


@dataclass
class ChannelsView:
    data: bool = False
    sms: bool = False
    sms_state: str | None = None
    call_state: str | None = None


@dataclass
class AlarmView:
    id: int
    aid: str | None
    state: str
    is_test: bool
    device_id: str
    special_number: str
    triggered_at: float | None
    created_at: float | None
    acknowledged_at: float | None
    acknowledged_by: str | None
    closed_at: float | None
    closed_by: str | None
    close_note: str
    battery_mv: int | None
    signal: int | None
    channels: ChannelsView
    last_fix: FixView | None = None
    case: CaseView | None = None


@dataclass
class TimelineEntry:
    at: float | None
    channel: str
    text: str


@dataclass
class DeviceView:
    id: str
    special_number: str
    fw_version: str
    heartbeat_interval_s: int
    last_seen_at: float | None
    battery_mv: int | None
    low_battery: bool
    signal: int | None
    last_fix: FixView | None
    flags: list[str] = field(default_factory=list)
    retired: bool = False
    case: CaseView | None = None


def case_view(case: Case | None) -> CaseView | None:
    if case is None:
        return None
    return CaseView(case.id, case.judicial_ref, case.name, case.address, case.police_notes)


def fix_view(p: Position) -> FixView:
    return FixView(p.method, p.lat, p.lon, p.acc_m, epoch(p.fix_at or p.received_at),
                   epoch(p.received_at))


def usernames(session: Session, ids: set[int | None]) -> dict[int, str]:
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    rows = session.execute(select(User.id, User.username).where(User.id.in_(ids)))
    return {user_id: name for user_id, name in rows}


def _channels(session: Session, alarm: Alarm) -> ChannelsView:
    seen = set(session.scalars(
        select(AlarmEvent.channel).where(AlarmEvent.alarm_id == alarm.id).distinct()))
    return ChannelsView(
        data=bool(seen & set(DATA_CHANNELS)),
        sms="sms" in seen or alarm.sms_state is not None,
        sms_state=alarm.sms_state,
        call_state=alarm.call_state,
    )


def latest_position(session: Session, alarm_id: int) -> Position | None:
    return session.scalars(
        select(Position).where(Position.alarm_id == alarm_id)
        .order_by(Position.received_at.desc(), Position.id.desc()).limit(1)).first()


def alarm_view(session: Session, alarm: Alarm, with_case: bool) -> AlarmView:
    device = alarm.device
    names = usernames(session, {alarm.acknowledged_by, alarm.closed_by})
    latest = latest_position(session, alarm.id)
    return AlarmView(
        id=alarm.id, aid=alarm.aid, state=alarm.state, is_test=alarm.test,
        device_id=alarm.device_id, special_number=device.special_number,
        triggered_at=epoch(alarm.triggered_at or alarm.created_at),
        created_at=epoch(alarm.created_at),
        acknowledged_at=epoch(alarm.acknowledged_at),
        acknowledged_by=names.get(alarm.acknowledged_by),
        closed_at=epoch(alarm.closed_at), closed_by=names.get(alarm.closed_by),
        close_note=alarm.close_note or "",
        battery_mv=device.battery_mv, signal=device.signal_csq,
        channels=_channels(session, alarm),
        last_fix=fix_view(latest) if latest is not None else None,
        case=case_view(device.case) if with_case else None,
    )


def open_alarms(session: Session, with_case: bool, limit: int = 200) -> list[AlarmView]:
    """Open alarms: the ones nobody has taken yet first, newest first within each state."""
    alarms = session.scalars(
        select(Alarm).where(Alarm.state != "closed")
        .order_by((Alarm.state == "received").desc(), Alarm.created_at.desc(), Alarm.id.desc())
        .limit(limit))
    return [alarm_view(session, a, with_case) for a in alarms]


def recently_closed(session: Session, with_case: bool, limit: int = 10) -> list[AlarmView]:
    alarms = session.scalars(
        select(Alarm).where(Alarm.state == "closed")
        .order_by(Alarm.closed_at.desc(), Alarm.id.desc()).limit(limit))
    return [alarm_view(session, a, with_case) for a in alarms]


def positions(session: Session, alarm_id: int, limit: int = 500) -> list[FixView]:
    rows = session.scalars(
        select(Position).where(Position.alarm_id == alarm_id)
        .order_by(Position.received_at.desc(), Position.id.desc()).limit(limit))
    return [fix_view(p) for p in rows]


def _key_values(detail: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in detail.split() if "=" in part)


def timeline_text(event: AlarmEvent) -> str:
    """The operator's reading of one timeline entry (French, from the recorded codes)."""
    if event.channel == "call" and event.kind in t.CALL_STATE_LABELS:
        text = f"{t.CHANNEL_LABELS['call']} : {t.CALL_STATE_LABELS[event.kind]}"
    elif event.channel == "sms" and event.kind in t.SMS_STATE_LABELS:
        text = f"{t.TIMELINE_AML_SMS} : {t.SMS_STATE_LABELS[event.kind]}"
    elif event.kind == "message":
        kv = _key_values(event.detail)
        return t.TIMELINE_MESSAGE.format(
            type=t.MESSAGE_TYPE_LABELS.get(kv.get("type", ""), kv.get("type", "?")),
            seq=kv.get("seq", "?"),
            method=t.METHOD_LABELS.get(kv.get("fix", ""), kv.get("fix", "?")))
    elif event.kind == "repress":
        return t.TIMELINE_REPRESS.format(n=_key_values(event.detail).get("press", "?"))
    elif event.channel == "console" and event.kind in ("acknowledged", "closed"):
        return f"{t.TIMELINE_KINDS[event.kind]} — {event.detail.removeprefix('by ')}"
    else:
        text = t.TIMELINE_KINDS.get(event.kind, event.kind.replace("_", " "))
    if event.detail == "reported by the handset":
        return f"{text} {t.TIMELINE_REPORTED_BY_HANDSET}"
    return f"{text} — {event.detail}" if event.detail else text


def timeline(session: Session, alarm_id: int) -> list[TimelineEntry]:
    rows = session.scalars(
        select(AlarmEvent).where(AlarmEvent.alarm_id == alarm_id)
        .order_by(AlarmEvent.at, AlarmEvent.id))
    return [TimelineEntry(epoch(e.at), e.channel, timeline_text(e)) for e in rows]


def map_data(fixes: list[FixView]) -> dict:
    """What the map script draws: newest first."""
    return {"positions": [
        {"lat": f.lat, "lon": f.lon, "acc": f.accuracy_m, "m": f.method, "t": f.fix_time}
        for f in fixes
    ]}


def overview(alarms: list[AlarmView]) -> list[dict]:
    """What the list page's map draws: one point per open alarm that has a fix."""
    return [
        {"id": a.id, "number": a.special_number, "state": a.state, "lat": a.last_fix.lat,
         "lon": a.last_fix.lon, "acc": a.last_fix.accuracy_m, "m": a.last_fix.method,
         "t": a.last_fix.fix_time}
        for a in alarms if a.last_fix is not None
    ]


def device_flags(device: Device, now: float) -> list[str]:
    """Codes: silent, never_seen, switched_off, low_battery, stale_fix."""
    flags = []
    last_seen = max(filter(None, (epoch(device.last_seen_at), epoch(device.last_heartbeat_at))),
                    default=None)
    silent_after = SILENT_AFTER_INTERVALS * device.heartbeat_interval_s
    if last_seen is None:
        if now - (epoch(device.created_at) or now) > silent_after:
            flags.append("never_seen")
    elif now - last_seen > silent_after:
        flags.append("silent")
    gasp = epoch(device.last_gasp_at)
    if gasp is not None and last_seen is not None and gasp >= last_seen:
        flags.append("switched_off")  # its last word was "switching off" (battery or button)
    if device.low_battery or (device.battery_mv is not None
                              and device.battery_mv < device.low_battery_mv):
        flags.append("low_battery")
    fix_at = epoch(device.last_fix_at)
    if last_seen is not None and (fix_at is None or now - fix_at > STALE_DEVICE_FIX_S):
        flags.append("stale_fix")
    return flags


def device_view(device: Device, now: float, with_case: bool) -> DeviceView:
    last_fix = None
    if device.last_lat is not None and device.last_lon is not None:
        last_fix = FixView(device.last_method or "?", device.last_lat, device.last_lon,
                           device.last_acc_m, epoch(device.last_fix_at), None)
    last_seen = max(filter(None, (epoch(device.last_seen_at), epoch(device.last_heartbeat_at))),
                    default=None)
    return DeviceView(
        id=device.id, special_number=device.special_number, fw_version=device.fw_version,
        heartbeat_interval_s=device.heartbeat_interval_s, last_seen_at=last_seen,
        battery_mv=device.battery_mv, low_battery="low_battery" in device_flags(device, now),
        signal=device.signal_csq, last_fix=last_fix, flags=device_flags(device, now),
        retired=device.retired_at is not None,
        case=case_view(device.case) if with_case else None,
    )


FLAG_ORDER = {"silent": 0, "never_seen": 1, "switched_off": 2, "low_battery": 3, "stale_fix": 4}


def devices(session: Session, now: float) -> list[DeviceView]:
    """Active devices, the ones needing attention first."""
    rows = session.scalars(select(Device).where(Device.retired_at.is_(None)).order_by(Device.id))
    views = [device_view(d, now, with_case=False) for d in rows]
    views.sort(key=lambda v: (min((FLAG_ORDER[f] for f in v.flags), default=9), v.id))
    return views


def device_alarms(session: Session, device_id: str, with_case: bool,
                  limit: int = 50) -> list[AlarmView]:
    rows = session.scalars(
        select(Alarm).where(Alarm.device_id == device_id)
        .order_by(Alarm.created_at.desc(), Alarm.id.desc()).limit(limit))
    return [alarm_view(session, a, with_case) for a in rows]


def device_by_number(session: Session, number: str) -> Device | None:
    """The handset whose special number is `number` however it was typed."""
    wanted = phone.normalize(number)  # raises phone.BadNumber
    tail = wanted[-6:]
    candidates = session.scalars(
        select(Device).where(Device.special_number.like(f"%{tail}"))
        .order_by(Device.retired_at.is_not(None), Device.id))
    for device in candidates:
        if phone.same_number(device.special_number, wanted):
            return device
    return None


def open_alarm_of(session: Session, device_id: str) -> Alarm | None:
    return session.scalars(
        select(Alarm).where(Alarm.device_id == device_id, Alarm.state != "closed")
        .order_by(Alarm.created_at.desc()).limit(1)).first()


def audit_rows(session: Session, username: str | None, before_id: int | None,
               limit: int = 200) -> list[AuditLog]:
    q = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)
    if username:
        q = q.where(AuditLog.username == username)
    if before_id:
        q = q.where(AuditLog.id < before_id)
    return list(session.scalars(q))


def inbound_sms_rows(session: Session, before_id: int | None, limit: int = 200,
                     status: str | None = None) -> list[InboundSms]:
    q = select(InboundSms).order_by(InboundSms.id.desc()).limit(limit)
    if before_id:
        q = q.where(InboundSms.id < before_id)
    if status:
        q = q.where(or_(InboundSms.status == status))
    return list(session.scalars(q))
