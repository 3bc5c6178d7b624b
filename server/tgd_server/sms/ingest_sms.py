"""The SMS channel into the ingest core: `ingest_aml_sms(sender, text, received_at)`.

Every SMS the gateway hands over is stored in `inbound_sms` in the same
transaction as what it changes, so nothing is ever lost and the gateway may
delete it from the modem once this returns:

- AML v1 from a registered handset (matched by its special number): joins the
  device's open alarm, or opens one that the first data message then joins
  (ingest.open_or_join_alarm); adds the position (method G or C, `rd` as
  accuracy, `top` as fix time) and the "aml" step to the alarm's timeline.
  Status `accepted`.
- Anything else from a registered handset (broken AML, free text): status
  `review`, never an alarm by itself (during an open alarm it is noted on that
  alarm's timeline as `sms_review`).
- Anything from an unknown number: status `unknown_sender`, never an alarm.

The same SMS handed over twice (the gateway stored it, then the modem rebooted
before AT+CMGD) is recognised by (sender, text, received_at) and changes
nothing the second time.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from .. import db, events
from ..ingest import (
    ALARM_JOIN_WINDOW,
    IngestResult,
    add_position,
    add_timeline,
    alarm_summary,
    open_or_join_alarm,
    position_summary,
)
from ..models import Alarm, Device, InboundSms, Position
from .aml import AmlError, AmlMessage, parse_aml

log = logging.getLogger("tgd.sms")

CHANNEL = "sms"
TIMELINE_KIND = "aml"
LAST_KNOWN_KIND = "last_known_position"
NC_COUNTRY_CODE = "687"
NC_NATIONAL_DIGITS = 6
_WRITE_ATTEMPTS = 3
_MAX_SENDER = 32
_MAX_TEXT = 2000  # a concatenated SMS is at most a few hundred characters


@dataclass(frozen=True)
class SmsOutcome:
    status: str  # accepted, review, unknown_sender
    inbound_sms_id: int
    device_id: str | None
    alarm_id: int | None
    duplicate: bool


# --- numbers (pure) ---------------------------------------------------------------

def number_variants(number: str) -> list[str]:
    """Every form a New Caledonian number may be stored or received in.

    '+687751001', '687751001', '00687751001' and '751001' are the same line. Other
    countries' numbers keep their international forms ('+33...' / '0033...' / '33...').
    """
    raw = (number or "").strip()
    digits = re.sub(r"\D", "", raw)
    if not digits:
        return [raw] if raw else []
    if digits.startswith("00"):
        digits = digits[2:]
    if len(digits) == NC_NATIONAL_DIGITS:
        digits = NC_COUNTRY_CODE + digits
    forms = {raw, "+" + digits, digits, "00" + digits}
    if digits.startswith(NC_COUNTRY_CODE) and len(digits) == len(NC_COUNTRY_CODE) + NC_NATIONAL_DIGITS:
        forms.add(digits[len(NC_COUNTRY_CODE):])
    return sorted(forms)


def canonical_number(number: str) -> str:
    """'+687751001' for any form of a NC number; other input comes back stripped."""
    raw = (number or "").strip()
    digits = re.sub(r"\D", "", raw)
    if not digits or re.search(r"[^\d\s+().\-/]", raw):
        return raw  # alphanumeric sender ("OPT", "Mobilis"): keep as it is
    if digits.startswith("00"):
        digits = digits[2:]
    if len(digits) == NC_NATIONAL_DIGITS:
        digits = NC_COUNTRY_CODE + digits
    return "+" + digits


def find_device(session: Session, sender: str) -> Device | None:
    """The registered (not retired) handset whose special number is `sender`."""
    variants = number_variants(sender)
    if not variants:
        return None
    device = session.scalars(
        select(Device).where(Device.special_number.in_(variants), Device.retired_at.is_(None))
    ).first()
    if device is not None:
        return device
    # Numbers stored with spaces or dots: compare canonical forms (a small table).
    wanted = canonical_number(sender)
    for candidate in session.scalars(select(Device).where(Device.retired_at.is_(None))):
        if canonical_number(candidate.special_number) == wanted:
            return candidate
    return None


# --- the channel ---------------------------------------------------------------------

def ingest_aml_sms(sender: str, text: str, received_at: datetime | None = None, *,
                   factory: sessionmaker | None = None) -> IngestResult:
    """Store one received SMS and feed the alarm pipeline; see the module docstring.

    Returns IngestResult(200, {"ok": True, "status", "inbound_sms_id", "device_id",
    "alarm_id", "duplicate"}) once everything is committed. Database errors propagate
    (the gateway then keeps the SMS on the modem and tries again later).
    """
    ingested_at = time.time()
    received_at = _aware(received_at) if received_at is not None else datetime.now(UTC)
    # PostgreSQL text cannot hold NUL: a message that could never be stored would
    # stay on the modem for ever, never reviewed.
    sender = (sender or "").replace("\x00", "\ufffd")[:_MAX_SENDER]
    text = (text or "").replace("\x00", "\ufffd")[:_MAX_TEXT]
    factory = factory or db.session_factory()
    for attempt in range(1, _WRITE_ATTEMPTS + 1):
        pending_events: list[dict] = []
        try:
            with db.write_session(factory) as session:
                outcome = _store(session, sender, text, received_at, ingested_at, pending_events)
            break
        except (IntegrityError, OperationalError) as exc:
            if attempt == _WRITE_ATTEMPTS:
                raise
            log.info("sms ingest retry %d after %s", attempt, type(exc).__name__)
    for event in pending_events:
        events.publish(event)
    log.info("sms from=%s status=%s device=%s alarm=%s duplicate=%s", sender, outcome.status,
             outcome.device_id, outcome.alarm_id, outcome.duplicate)
    return IngestResult(200, {
        "ok": True, "status": outcome.status, "inbound_sms_id": outcome.inbound_sms_id,
        "device_id": outcome.device_id, "alarm_id": outcome.alarm_id,
        "duplicate": outcome.duplicate,
    })


def _store(session: Session, sender: str, text: str, received_at: datetime,
           ingested_at: float, pending_events: list[dict]) -> SmsOutcome:
    earlier = _already_stored(session, sender, text, received_at)
    if earlier is not None:
        return SmsOutcome(earlier.status, earlier.id, earlier.device_id, earlier.alarm_id, True)

    device = find_device(session, sender)
    if device is None:
        reason = "sender is not the special number of any registered handset"
        return _keep(session, sender, text, received_at, "unknown_sender", reason, None)
    # Serialise with the data channel of the same handset (the device row lock).
    device = session.scalars(
        select(Device).where(Device.id == device.id).with_for_update()
    ).one()
    try:
        aml = _parse_tolerating_padding(text)
    except AmlError as err:
        # Never an alarm by itself; but during an open alarm the operators see that the
        # handset sent something (a garbled AML is still a sign of life).
        alarm = _open_alarm(session, device, received_at)
        if alarm is not None:
            add_timeline(session, alarm, CHANNEL, "sms_review",
                         f"SMS that is not AML v1 ({err.code}), kept for review", at=received_at)
        outcome = _keep(session, sender, text, received_at, "review", f"not AML v1: {err}",
                        device, alarm.id if alarm is not None else None)
        if alarm is not None:
            pending_events.append({"type": "alarm.updated", "ingested_at": ingested_at,
                                   "channel": CHANNEL, **alarm_summary(alarm, device)})
        return outcome

    alarm, created = open_or_join_alarm(session, device, None, CHANNEL, None,
                                        received_at=received_at)
    # (_aware: SQLite may hand datetimes back without their zone)
    alarm.updated_at = max(_aware(alarm.updated_at), received_at)
    device.last_seen_at = max(_aware(device.last_seen_at or received_at), received_at)
    position = None
    if aml.has_position:
        position = add_position(session, device, alarm, aml.lat, aml.lon, aml.radius_m,
                                aml.method, aml.time_of_positioning, CHANNEL,
                                received_at=received_at)
    add_timeline(session, alarm, CHANNEL, TIMELINE_KIND, _timeline_detail(aml), at=received_at)
    if position is None and not _alarm_has_position(session, alarm):
        position = _last_known_position(session, device, alarm, received_at)
    reason = "AML v1 opened an alarm" if created else "AML v1 joined an open alarm"
    if device.imei and aml.imei.lstrip("0") and not _same_imei(aml.imei, device.imei):
        # Still the handset's number, so still its alarm; but a supervisor should know
        # that the SIM may have been moved into another phone.
        reason += f"; IMEI {aml.imei} differs from the registered {device.imei}"
        add_timeline(session, alarm, CHANNEL, "aml_imei_mismatch",
                     f"AML ei={aml.imei}, registered IMEI {device.imei}", at=received_at)
    outcome = _keep(session, sender, text, received_at, "accepted", reason, device, alarm.id)
    base = {"ingested_at": ingested_at, "channel": CHANNEL}
    pending_events.append({"type": "alarm.created" if created else "alarm.updated", **base,
                           **alarm_summary(alarm, device)})
    if position is not None:
        session.flush()
        pending_events.append({"type": "position.added", **base, **position_summary(position)})
    return outcome


def _alarm_has_position(session: Session, alarm: Alarm) -> bool:
    return session.scalar(select(Position.id).where(Position.alarm_id == alarm.id).limit(1)) is not None


def _last_known_position(session: Session, device: Device, alarm: Alarm,
                         received_at: datetime) -> Position | None:
    """An AML without a position (no GNSS fix yet, and a handset cannot place its cell)
    on an alarm that has none: give the police the handset's last known position.

    It keeps its own method and fix time, so the console shows how old it is; the
    timeline says where it comes from. Better an old circle than an empty map while
    the data channel is down.
    """
    if device.last_lat is None or device.last_lon is None or device.last_fix_at is None:
        return None
    position = add_position(session, device, alarm, device.last_lat, device.last_lon,
                            device.last_acc_m, device.last_method or "C", device.last_fix_at,
                            CHANNEL, received_at=received_at)
    age_min = max(0, int((received_at - _aware(device.last_fix_at)).total_seconds() // 60))
    add_timeline(session, alarm, CHANNEL, LAST_KNOWN_KIND,
                 f"AML without position: last known position of the handset "
                 f"({device.last_method or 'C'}, {age_min} min before this SMS)", at=received_at)
    return position


def _keep(session: Session, sender: str, text: str, received_at: datetime, status: str,
          reason: str, device: Device | None, alarm_id: int | None = None) -> SmsOutcome:
    row = InboundSms(received_at=received_at, sender=sender, text=text, status=status,
                     reason=reason[:1000], device_id=device.id if device else None,
                     alarm_id=alarm_id)
    session.add(row)
    session.flush()
    return SmsOutcome(status, row.id, row.device_id, alarm_id, False)


def _open_alarm(session: Session, device: Device, received_at: datetime) -> Alarm | None:
    """The handset's most recent open alarm that an SMS would join (never creates one)."""
    return session.scalars(
        select(Alarm).where(Alarm.device_id == device.id, Alarm.state != "closed",
                            Alarm.created_at >= received_at - ALARM_JOIN_WINDOW)
        .order_by(Alarm.created_at.desc()).limit(1)
    ).first()


def _already_stored(session: Session, sender: str, text: str,
                    received_at: datetime) -> InboundSms | None:
    return session.scalars(
        select(InboundSms).where(InboundSms.sender == sender, InboundSms.text == text,
                                 InboundSms.received_at == received_at)
    ).first()


def _parse_tolerating_padding(text: str) -> AmlMessage:
    """Strict AML; the only leniency: line-end or blank padding around an otherwise
    valid message (added by some modems or SMSCs) does not cost an alarm its SMS."""
    try:
        return parse_aml(text)
    except AmlError as err:
        stripped = text.strip()
        if stripped == text or err.code not in ("bad_length", "too_long", "bad_value"):
            raise
        try:
            return parse_aml(stripped)
        except AmlError:
            raise err from None


def _same_imei(reported: str, registered: str) -> bool:
    """AML `ei` may carry the 16-digit IMEISV: compare the 14-digit TAC + serial."""
    return reported[:14] == re.sub(r"\D", "", registered)[:14]


def _timeline_detail(aml: AmlMessage) -> str:
    if not aml.has_position:
        return "AML pm=N (no position)"
    return (f"AML pm={aml.method} lat={aml.lat:.5f} lon={aml.lon:.5f} rd={aml.radius_m} m "
            f"lc={aml.confidence_pct}% top={aml.time_of_positioning:%Y-%m-%dT%H:%M:%SZ}")


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
