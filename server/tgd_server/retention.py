"""Position retention: positions (and the raw messages that carry them: signed
device messages and received SMS, whose AML text holds a position) older than
TGD_POSITION_RETENTION_DAYS are deleted. Alarms, timelines and audit stay."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from .models import DeviceMessage, InboundSms, Position, utcnow


def purge_positions(session: Session, days: int, now: datetime | None = None) -> dict:
    """Delete what is older than `days`; returns the counts. The caller commits."""
    if days < 1:
        raise ValueError("retention is at least one day")
    cutoff = (now or utcnow()) - timedelta(days=days)
    positions = session.execute(delete(Position).where(Position.received_at < cutoff)).rowcount
    messages = session.execute(
        delete(DeviceMessage).where(DeviceMessage.received_at < cutoff)).rowcount
    sms = session.execute(delete(InboundSms).where(InboundSms.received_at < cutoff)).rowcount
    return {"positions": positions, "messages": messages, "sms": sms,
            "cutoff": cutoff.isoformat()}
