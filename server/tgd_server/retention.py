"""Position retention: everything that can hold a position of a protected person and is
older than TGD_POSITION_RETENTION_DAYS is deleted (or, on a device row, cleared):

- positions;
- raw device messages (their `fix`) and received SMS (the AML text holds a position);
- security-log rows (a refused message's body excerpt can hold its `lat`/`lon`), which
  also bounds the log's size;
- a device's last known fix (last_lat/lon/acc, method, time, cell) when it is that old.

Alarms, their timelines and the audit log stay.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, update
from sqlalchemy.orm import Session

from .models import Device, DeviceMessage, InboundSms, Position, SecurityLog, utcnow


def purge_positions(session: Session, days: int, now: datetime | None = None) -> dict:
    """Delete what is older than `days`; returns the counts. The caller commits
    (inside db.write_session)."""
    if days < 1:
        raise ValueError("retention is at least one day")
    cutoff = (now or utcnow()) - timedelta(days=days)
    positions = session.execute(delete(Position).where(Position.received_at < cutoff)).rowcount
    messages = session.execute(
        delete(DeviceMessage).where(DeviceMessage.received_at < cutoff)).rowcount
    sms = session.execute(delete(InboundSms).where(InboundSms.received_at < cutoff)).rowcount
    security = session.execute(delete(SecurityLog).where(
        func.coalesce(SecurityLog.last_at, SecurityLog.at) < cutoff)).rowcount
    last_fixes = session.execute(
        update(Device).where(Device.last_fix_at < cutoff)
        .values(last_lat=None, last_lon=None, last_acc_m=None, last_method=None,
                last_fix_at=None, last_cell=None)
        .execution_options(synchronize_session=False)).rowcount
    return {"positions": positions, "messages": messages, "sms": sms,
            "security_log": security, "device_last_fixes": last_fixes,
            "cutoff": cutoff.isoformat()}
