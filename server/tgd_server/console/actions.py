"""What an operator changes on an alarm from the console: acknowledge, close with a note.

The state change itself is the core's (`tgd_server.alarms`, shared with the REST
API: row lock, timeline entry on the `console` channel). The console adds its own
rules (a closing note is required; acknowledging twice is reported, not silent),
the audit row, and the `alarm.updated` event once committed. The handset learns
the new state in the answer to its next message (protocol.md).
"""

from __future__ import annotations

from .. import alarms, db
from ..auth import audit
from ..models import User

MAX_NOTE_CHARS = 4000  # the core's limit


class ActionRefused(Exception):
    """The alarm's state or the input does not allow this action."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code  # already_acknowledged, already_closed, note_required, note_too_long


def acknowledge(alarm_id: int, user: User) -> None:
    with db.write_session() as session:
        before = alarms.get_alarm(session, alarm_id, for_update=True).state
        if before == "closed":
            raise ActionRefused("already_closed")
        if before == "acknowledged":
            raise ActionRefused("already_acknowledged")
        alarm = alarms.acknowledge(session, alarm_id, user)
        device = alarm.device
    audit(user, "ack_alarm", "alarm", alarm_id)
    alarms.publish_change(alarm, device)


def close(alarm_id: int, user: User, note: str) -> None:
    note = (note or "").strip()
    if not note:
        raise ActionRefused("note_required")
    if len(note) > MAX_NOTE_CHARS:
        raise ActionRefused("note_too_long")
    with db.write_session() as session:
        if alarms.get_alarm(session, alarm_id, for_update=True).state == "closed":
            raise ActionRefused("already_closed")
        alarm = alarms.close(session, alarm_id, user, note)
        device = alarm.device
    audit(user, "close_alarm", "alarm", alarm_id, detail=note[:200])
    alarms.publish_change(alarm, device)
