"""The ingest core: every channel's device messages go through one pipeline.

`ingest_device_message(body, signature, channel, source)` runs the steps of
`STEPS` in order (docs/protocol.md is the contract):

    bytes:        check_size, require_signature, parse_body
    write         check:  load_device, verify_signature, check_sequence, validate_values
                          (may refuse; write nothing; unknown device = bad_signature)
    transaction:  store:  advance_sequence, store_message, update_device, join_alarm,
                          store_position, add_message_timeline, settle_commands
                  BatchRows.write, then: detect_events, build_answer
    after commit: publish_events

A check step raises `MessageRefused` to refuse: nothing is stored, one row goes
to the security log, and the result carries the protocol's error answer. The
handset is answered only after what it sent is committed.

Group commit: in each server process one writer thread per database takes
every waiting message and stores them in one transaction, with one query for
their devices, one statement per table and one commit (SQLite has one writer at
a time and an fsync per commit; on PostgreSQL it saves round trips). The batch
works on plain objects (DeviceState, AlarmState, PendingPosition) with Core
statements (BatchRows), not ORM objects: the ORM's unit of work cost more CPU
than the rest of a message (docs/benchmarks.md "Server ingest"). If a batch
fails unexpectedly, each of its messages is written alone, in its own
transaction, so that one cannot sink the others; the security-log rows of a batch
are sanitised and stored in a SAVEPOINT, so that a stranger's refused request can
never be what fails a batch. Messages of one device are
serialised by its row (SELECT ... FOR UPDATE in id order on PostgreSQL, so that
the batches of several processes cannot deadlock; the single writer on SQLite);
concurrent first messages of one alarm meet on the unique (device, aid)
constraint (INSERT ... ON CONFLICT DO NOTHING, then a re-read).

`open_or_join_alarm`, `add_position` and `add_timeline` are also the building
blocks of the SMS channel (sms/ingest_sms.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import String, and_, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from . import db, events, ota, security_log
from .message import (
    MAX_BODY_BYTES,
    DeviceMessage,
    MessageRefused,
    parse_envelope,
    validate,
)
from .models import Alarm, AlarmEvent, Cell, Command, Device, Position, utcnow
from .models import DeviceMessage as StoredMessage
from .security_log import refusal_row
from .seqwindow import SeqRefused, SeqState, advance, from_signed, to_signed

log = logging.getLogger("tgd.ingest")

# An SMS (no aid) or a first data message joins an open alarm of the device that
# is younger than this; later it opens a new one.
ALARM_JOIN_WINDOW = timedelta(hours=4)
LOW_BATTERY_HYSTERESIS_MV = 100
_WRITE_ATTEMPTS = 3


@dataclass
class IngestResult:
    status: int
    answer: dict


@dataclass
class Context:
    """What the steps share for one message."""

    body: bytes
    signature: str | None
    channel: str
    source: str
    ingested_at: float
    received_at: datetime
    now: float
    factory: sessionmaker | None = None
    envelope: dict | None = None
    message: DeviceMessage | None = None
    session: Session | None = None
    device: DeviceState | None = None
    alarm: AlarmState | None = None
    alarm_created: bool = False
    newest: bool = True  # seq above every earlier one (a late message does not rewind states)
    seq_state: SeqState | None = None
    batch_devices: dict[str, DeviceState] | None = None
    rows: BatchRows | None = None  # what the batch inserts with Core statements at its end
    positions: list[PendingPosition] = field(default_factory=list)
    device_flags: list[str] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    answer: dict | None = None


# --- the batch's rows: Core statements, no ORM unit of work --------------------------

_DEVICES = Device.__table__
# The device columns the ingest reads (one query per batch, locked in id order).
_STATE_COLUMNS = (
    "id", "key_hex", "retired_at", "special_number", "low_battery_mv", "seq_high", "seq_bitmap",
    "fw_version", "battery_mv", "signal_csq", "low_battery", "last_cell", "last_lat", "last_lon",
    "last_acc_m", "last_method", "last_fix_at", "commands_pending",
)
# Written back for every device that accepted a message. The times below are not read:
# None keeps the stored value (COALESCE), which the ingest never sets back to NULL.
_WRITTEN_COLUMNS = (
    "seq_high", "seq_bitmap", "fw_version", "battery_mv", "signal_csq", "low_battery",
    "last_cell", "last_lat", "last_lon", "last_acc_m", "last_method", "last_fix_at",
    "last_seen_at",
)
_KEPT_IF_NONE = ("last_heartbeat_at", "last_gasp_at")


class DeviceState:
    """A device row as the ingest sees it: plain attributes named as Device's, loaded with
    one Core query per batch and written back with one executemany UPDATE (the ORM's
    identity map and attribute events cost more than the rest of a message)."""

    __slots__ = _STATE_COLUMNS + ("last_seen_at", "last_heartbeat_at", "last_gasp_at", "dirty")

    def __init__(self, row) -> None:
        for name, value in zip(_STATE_COLUMNS, row, strict=True):
            setattr(self, name, value)
        self.last_seen_at = self.last_heartbeat_at = self.last_gasp_at = None
        self.dirty = False

    def update_params(self) -> dict:
        params = {"p_" + name: getattr(self, name) for name in _WRITTEN_COLUMNS}
        for name in _KEPT_IF_NONE:
            params["p_" + name] = getattr(self, name)
        params["p_id"] = self.id
        return params


_DEVICE_STATE_SELECT = (
    select(*[_DEVICES.c[name] for name in _STATE_COLUMNS])
    .where(_DEVICES.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_DEVICES.c.id)
    .with_for_update()
)
# On PostgreSQL: one array parameter, so one statement text whatever the batch's size
# (psycopg caches and prepares it; an IN list of 50+ parameters is re-parsed each time).
_DEVICE_STATE_SELECT_PG = (
    select(*[_DEVICES.c[name] for name in _STATE_COLUMNS])
    .where(_DEVICES.c.id == func.any(bindparam("ids", type_=postgresql.ARRAY(String()))))
    .order_by(_DEVICES.c.id)
    .with_for_update()
)
_DEVICE_UPDATE = (
    update(_DEVICES).where(_DEVICES.c.id == bindparam("p_id"))
    .values({
        **{name: bindparam("p_" + name, type_=_DEVICES.c[name].type) for name in _WRITTEN_COLUMNS},
        **{name: func.coalesce(bindparam("p_" + name, type_=_DEVICES.c[name].type),
                               _DEVICES.c[name])
           for name in _KEPT_IF_NONE},
    })
)


def load_device_states(session: Session, ids) -> dict[str, DeviceState]:
    """The devices of `ids`, locked in id order (FOR UPDATE on PostgreSQL, so that the
    batches of several server processes cannot deadlock; the single writer on SQLite)."""
    connection = session.connection()
    statement = (_DEVICE_STATE_SELECT_PG if connection.dialect.name == "postgresql"
                 else _DEVICE_STATE_SELECT)
    rows = connection.execute(statement, {"ids": sorted(ids)})
    return {row[0]: DeviceState(row) for row in rows}


class PendingPosition:
    """A position of the batch; `id` is set when the batch inserts it."""

    __slots__ = ("id", "device_id", "alarm_id", "lat", "lon", "acc_m", "method", "fix_at",
                 "received_at", "channel", "cell")

    def __init__(self, device_id: str, alarm_id: int | None, lat: float, lon: float,
                 acc_m: int | None, method: str, fix_at: datetime | None,
                 received_at: datetime, channel: str, cell: str | None) -> None:
        self.id = None
        self.device_id, self.alarm_id, self.lat, self.lon = device_id, alarm_id, lat, lon
        self.acc_m, self.method, self.fix_at = acc_m, method, fix_at
        self.received_at, self.channel, self.cell = received_at, channel, cell

    def params(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__[1:]}


_POSITION_INSERT = insert(Position.__table__).returning(Position.__table__.c.id,
                                                        sort_by_parameter_order=True)
_MESSAGE_INSERT = insert(StoredMessage.__table__)
_TIMELINE_INSERT = insert(AlarmEvent.__table__)


_ALARMS = Alarm.__table__
_ALARM_COLUMNS = ("id", "device_id", "aid", "state", "test", "created_at", "call_state",
                  "sms_state")


class AlarmState:
    """An alarm as the ingest sees it (the attributes of Alarm that it reads or sets);
    the batch writes `updated_at` and the channel states back with one executemany."""

    __slots__ = _ALARM_COLUMNS + ("updated_at",)

    def __init__(self, row) -> None:
        for name, value in zip(_ALARM_COLUMNS, row, strict=True):
            setattr(self, name, value)
        self.updated_at = None

    def update_params(self) -> dict:
        return {"p_id": self.id, "p_updated_at": self.updated_at,
                "p_call_state": self.call_state, "p_sms_state": self.sms_state}


_ALARM_SELECT = select(*[_ALARMS.c[name] for name in _ALARM_COLUMNS]).where(
    _ALARMS.c.device_id == bindparam("device_id"), _ALARMS.c.aid == bindparam("aid"))
_ORPHAN_ALARM_SELECT = (
    select(_ALARMS.c.id, _ALARMS.c.triggered_at)
    .where(_ALARMS.c.device_id == bindparam("device_id"), _ALARMS.c.state != "closed",
           _ALARMS.c.created_at >= bindparam("since", type_=_ALARMS.c.created_at.type),
           _ALARMS.c.aid.is_(None))
    .order_by(_ALARMS.c.created_at.desc()).limit(1)
)
_ORPHAN_ALARM_JOIN = (
    update(_ALARMS).where(_ALARMS.c.id == bindparam("p_id"), _ALARMS.c.aid.is_(None))
    .values(aid=bindparam("p_aid"),
            triggered_at=bindparam("p_triggered_at", type_=_ALARMS.c.triggered_at.type))
)
_ALARM_INSERTS = {
    dialect.__name__.rsplit(".", 1)[-1]: dialect.insert(_ALARMS).values(
        device_id=bindparam("p_device_id"), aid=bindparam("p_aid"), state="received",
        test=bindparam("p_test", type_=_ALARMS.c.test.type),
        triggered_at=bindparam("p_triggered_at", type_=_ALARMS.c.triggered_at.type),
        created_at=bindparam("p_created_at", type_=_ALARMS.c.created_at.type),
        updated_at=bindparam("p_created_at", type_=_ALARMS.c.updated_at.type),
        first_channel=bindparam("p_first_channel"), close_note="", notes="",
    ).on_conflict_do_nothing(index_elements=["device_id", "aid"])
    for dialect in (postgresql, sqlite)
}
# The channel states are only ever set (never back to NULL) by the ingest: None keeps them.
_ALARM_UPDATE = (
    update(_ALARMS).where(_ALARMS.c.id == bindparam("p_id"))
    .values(updated_at=bindparam("p_updated_at", type_=_ALARMS.c.updated_at.type),
            call_state=func.coalesce(bindparam("p_call_state", type_=String()),
                                     _ALARMS.c.call_state),
            sms_state=func.coalesce(bindparam("p_sms_state", type_=String()),
                                    _ALARMS.c.sms_state))
)


class BatchRows:
    """What a batch inserts: messages, positions and timeline entries, one executemany
    each (insertmanyvalues: a few statements, not one per row), then its alarms and
    devices. The alarms it has read are kept by (device, aid): a later message of the
    batch sees what an earlier one changed."""

    __slots__ = ("messages", "positions", "timeline", "alarms", "touched_alarms")

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.positions: list[PendingPosition] = []
        self.timeline: list[dict] = []
        self.alarms: dict[tuple[str, str], AlarmState] = {}
        self.touched_alarms: dict[int, AlarmState] = {}

    def alarm(self, session: Session, device_id: str, aid: str) -> AlarmState | None:
        """The alarm of (device, aid), from the batch or the database."""
        alarm = self.alarms.get((device_id, aid))
        if alarm is None:
            row = session.connection().execute(
                _ALARM_SELECT, {"device_id": device_id, "aid": aid}).first()
            if row is not None:
                alarm = self.alarms[(device_id, aid)] = AlarmState(row)
        return alarm

    def write(self, session: Session, devices) -> None:
        session.flush()  # the ORM's part: commands handed out
        connection = session.connection()  # Core statements: no ORM execution machinery
        changed = [device for device in devices if device.dirty]
        if connection.dialect.name == "postgresql":
            self._write_postgresql(connection, changed)
        else:
            self._write_core(connection, changed)
        if self.timeline:
            connection.execute(_TIMELINE_INSERT, self.timeline)
        if self.touched_alarms:
            connection.execute(_ALARM_UPDATE, [alarm.update_params()
                                               for alarm in self.touched_alarms.values()])

    def _write_core(self, connection, changed: list[DeviceState]) -> None:
        if self.messages:
            connection.execute(_MESSAGE_INSERT, self.messages)
        if self.positions:
            ids = connection.execute(_POSITION_INSERT,
                                     [position.params() for position in self.positions])
            for position, position_id in zip(self.positions, ids.scalars(), strict=True):
                position.id = position_id
        if changed:
            connection.execute(_DEVICE_UPDATE, [device.update_params() for device in changed])

    def _write_postgresql(self, connection, changed: list[DeviceState]) -> None:
        """The same rows, one statement each whatever their number: columns as arrays
        through unnest() (one statement text: psycopg caches and prepares it; an
        executemany costs a round of Python per row, a multi-row VALUES a new text)."""
        if self.messages:
            connection.exec_driver_sql(_PG_MESSAGE_INSERT, tuple(
                [row[name] for row in self.messages] for name in _PG_MESSAGE_COLUMNS))
        if self.positions:
            # Ids taken first (nextval): RETURNING's order is not promised for many rows.
            ids = connection.exec_driver_sql(_PG_POSITION_IDS, (len(self.positions),))
            for position, (position_id,) in zip(self.positions, ids, strict=True):
                position.id = position_id
            connection.exec_driver_sql(_PG_POSITION_INSERT, tuple(
                [getattr(position, name) for position in self.positions]
                for name in _PG_POSITION_COLUMNS))
        if changed:
            connection.exec_driver_sql(_PG_DEVICE_UPDATE, tuple(
                [getattr(device, name) for device in changed]
                for name in _PG_DEVICE_COLUMNS))


_PG_MESSAGE_COLUMNS = ("device_id", "seq", "type", "channel", "received_at", "body")
_PG_MESSAGE_INSERT = (
    "INSERT INTO device_messages (device_id, seq, type, channel, received_at, body) "
    "SELECT * FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::text[], "
    "%s::timestamptz[], %s::text[])"
)
_PG_POSITION_COLUMNS = ("id", "device_id", "alarm_id", "lat", "lon", "acc_m", "method", "fix_at",
                        "received_at", "channel", "cell")
_PG_POSITION_IDS = ("SELECT nextval(pg_get_serial_sequence('positions', 'id')) "
                    "FROM generate_series(1, %s)")
_PG_POSITION_INSERT = (
    "INSERT INTO positions (id, device_id, alarm_id, lat, lon, acc_m, method, fix_at, "
    "received_at, channel, cell) "
    "SELECT * FROM unnest(%s::int[], %s::text[], %s::int[], %s::float8[], %s::float8[], "
    "%s::int[], %s::text[], %s::timestamptz[], %s::timestamptz[], %s::text[], %s::text[])"
)
_PG_DEVICE_TYPES = {
    "id": "text", "seq_high": "bigint", "seq_bitmap": "bigint", "fw_version": "text",
    "battery_mv": "int", "signal_csq": "int", "low_battery": "boolean", "last_cell": "text",
    "last_lat": "float8", "last_lon": "float8", "last_acc_m": "int", "last_method": "text",
    "last_fix_at": "timestamptz", "last_seen_at": "timestamptz",
    "last_heartbeat_at": "timestamptz", "last_gasp_at": "timestamptz",
}
_PG_DEVICE_COLUMNS = ("id",) + _WRITTEN_COLUMNS + _KEPT_IF_NONE
_PG_DEVICE_UPDATE = (
    "UPDATE devices AS d SET "
    + ", ".join([f"{name} = u.{name}" for name in _WRITTEN_COLUMNS]
                + [f"{name} = COALESCE(u.{name}, d.{name})" for name in _KEPT_IF_NONE])
    + " FROM unnest("
    + ", ".join(f"%s::{_PG_DEVICE_TYPES[name]}[]" for name in _PG_DEVICE_COLUMNS)
    + ") AS u(" + ", ".join(_PG_DEVICE_COLUMNS) + ") WHERE d.id = u.id"
)


# --- bytes only ---------------------------------------------------------------

def check_size(ctx: Context) -> None:
    if len(ctx.body) > MAX_BODY_BYTES:
        raise MessageRefused(413, "too_large", f"body over {MAX_BODY_BYTES} bytes")
    if not ctx.body:
        raise MessageRefused(400, "malformed_json", "empty body")


def require_signature(ctx: Context) -> None:
    if not ctx.signature:
        raise MessageRefused(401, "unsigned", "no signature")


def parse_body(ctx: Context) -> None:
    ctx.envelope = parse_envelope(ctx.body)


# --- one write transaction: checks (may refuse, write nothing) -------------------------

def load_device(ctx: Context) -> None:
    """The device row, locked (FOR UPDATE on PostgreSQL; the single writer on SQLite)."""
    dev = ctx.envelope["dev"]
    if ctx.batch_devices is None:
        ctx.batch_devices = load_device_states(ctx.session, {dev})
    device = ctx.batch_devices.get(dev)  # the batch loaded and locked its devices at once
    ctx.device = device if device is not None and device.retired_at is None else None


def verify_signature(ctx: Context) -> None:
    """HMAC-SHA256 of the exact body; an unknown or retired device is a bad signature too.

    An HMAC is computed even for an unknown device, so that timing does not tell.
    """
    key_hex = ctx.device.key_hex if ctx.device is not None else _NO_KEY
    expected = hmac.new(bytes.fromhex(key_hex), ctx.body, hashlib.sha256).hexdigest().encode()
    given = ctx.signature.strip().lower().encode("ascii", "replace")
    if not hmac.compare_digest(expected, given) or ctx.device is None:
        raise MessageRefused(401, "bad_signature", "signature does not match the body")


_NO_KEY = "00" * 32


def check_sequence(ctx: Context) -> None:
    """Check `seq` against the device's window (applied later by advance_sequence)."""
    device = ctx.device
    seq = ctx.envelope.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= 2**31 - 1:
        raise MessageRefused(400, "bad_value", "seq must be an integer in 1..2147483647")
    try:
        ctx.seq_state = advance(SeqState(device.seq_high, from_signed(device.seq_bitmap)), seq)
    except SeqRefused as refused:
        raise MessageRefused(409, refused.code, str(refused), seq_floor=refused.high) from None


def validate_values(ctx: Context) -> None:
    ctx.message = validate(ctx.envelope, now=ctx.now)


def advance_sequence(ctx: Context) -> None:
    device = ctx.device
    ctx.newest = ctx.seq_state.high > device.seq_high
    device.seq_high, device.seq_bitmap = ctx.seq_state.high, to_signed(ctx.seq_state.bitmap)


def store_message(ctx: Context) -> None:
    msg = ctx.message
    ctx.device.dirty = True
    ctx.rows.messages.append({"device_id": msg.dev, "seq": msg.seq, "type": msg.type,
                              "channel": ctx.channel, "received_at": ctx.received_at,
                              "body": ctx.body.decode("utf-8")})


def update_device(ctx: Context) -> None:
    device, msg = ctx.device, ctx.message
    device.last_seen_at = ctx.received_at
    device.fw_version = msg.fw
    if msg.bat is not None:
        device.battery_mv = msg.bat
    if msg.csq is not None:
        device.signal_csq = msg.csq
    if msg.cell is not None:
        device.last_cell = json.dumps(msg.cell, separators=(",", ":"))
    if msg.type == "heartbeat":
        device.last_heartbeat_at = ctx.received_at
    low = msg.type == "low_battery" or (msg.bat is not None and msg.bat < device.low_battery_mv)
    recovered = (msg.type != "low_battery" and msg.bat is not None
                 and msg.bat >= device.low_battery_mv + LOW_BATTERY_HYSTERESIS_MV)
    if low and not device.low_battery:
        device.low_battery = True
        ctx.device_flags.append("low_battery")
    elif recovered and device.low_battery:
        device.low_battery = False
        ctx.device_flags.append("battery_ok")
    if msg.type == "last_gasp":
        device.last_gasp_at = ctx.received_at
        ctx.device_flags.append("last_gasp")


def join_alarm(ctx: Context) -> None:
    msg = ctx.message
    if msg.aid is None:
        return
    at = _utc(msg.at) if msg.at is not None else None
    if msg.type in ("alarm", "position", "test"):
        ctx.alarm, ctx.alarm_created = _batch_open_or_join_alarm(
            ctx, msg.aid, at, test=msg.type == "test")
    else:  # low_battery / last_gasp during an alarm: join it, never open one
        ctx.alarm = ctx.rows.alarm(ctx.session, ctx.device.id, msg.aid)
    if ctx.alarm is not None:
        ctx.alarm.updated_at = ctx.received_at
        ctx.rows.touched_alarms[ctx.alarm.id] = ctx.alarm


def _batch_open_or_join_alarm(ctx: Context, aid: str, at: datetime | None,
                              test: bool) -> tuple[AlarmState, bool]:
    """open_or_join_alarm() with Core statements and the batch's alarms: the same rules
    (the alarm with this aid; else an open alarm an AML SMS opened without an aid, which
    takes it; else a new one, ON CONFLICT DO NOTHING against a concurrent writer)."""
    session, rows, device_id = ctx.session, ctx.rows, ctx.device.id
    alarm = rows.alarm(session, device_id, aid)
    if alarm is not None:
        return alarm, False
    connection = session.connection()
    orphan = connection.execute(_ORPHAN_ALARM_SELECT, {
        "device_id": device_id, "since": ctx.received_at - ALARM_JOIN_WINDOW}).first()
    if orphan is not None:
        joined = connection.execute(_ORPHAN_ALARM_JOIN, {
            "p_id": orphan.id, "p_aid": aid, "p_triggered_at": at or orphan.triggered_at,
        }).rowcount
        if joined:
            return rows.alarm(session, device_id, aid), False
    result = connection.execute(_ALARM_INSERTS[connection.dialect.name], {
        "p_device_id": device_id, "p_aid": aid, "p_test": test, "p_triggered_at": at,
        "p_created_at": ctx.received_at, "p_first_channel": ctx.channel})
    alarm = rows.alarm(session, device_id, aid)
    if alarm is None:  # cannot happen: the conflicting row is committed or ours
        raise IntegrityError("alarm vanished after insert", None, Exception(aid))
    return alarm, bool(result.rowcount)


def store_position(ctx: Context) -> None:
    msg, device = ctx.message, ctx.device
    fix = msg.fix
    if fix.method == "G":
        lat, lon, acc = fix.lat, fix.lon, fix.acc_m
    elif fix.method == "C" and msg.cell is not None:
        with ctx.session.no_autoflush:
            located = locate_cell(ctx.session, msg.cell)
        if located is None:
            return
        lat, lon, acc = located
    else:
        return
    fix_at = _utc(fix.t) if fix.t is not None else (
        _utc(msg.t) if msg.t is not None and fix.method == "C" else None)
    if ctx.alarm is None and _same_fix(device, lat, lon, fix.method, fix_at):
        return  # a heartbeat repeating the last known fix adds nothing
    cell = json.dumps(msg.cell, separators=(",", ":")) if msg.cell is not None else None
    position = PendingPosition(device.id, ctx.alarm.id if ctx.alarm is not None else None,
                               lat, lon, acc, fix.method, fix_at, ctx.received_at, ctx.channel,
                               cell)
    ctx.rows.positions.append(position)
    ctx.positions.append(position)
    _make_last_fix(device, lat, lon, acc, fix.method, fix_at, ctx.received_at)


def add_message_timeline(ctx: Context) -> None:
    alarm, msg = ctx.alarm, ctx.message
    if alarm is None:
        return
    detail = f"type={msg.type} seq={msg.seq} fix={msg.fix.method}"
    if msg.call_state:
        detail += f" call={msg.call_state}"
    if msg.sms_state:
        detail += f" sms={msg.sms_state}"
    _timeline(ctx, alarm, ctx.channel, "message", detail, at=ctx.received_at)
    if msg.press is not None and msg.press > 1:
        add_represses(ctx, alarm, msg.press)
    if not ctx.newest:
        return  # a late message: its channel states are older than what we know
    if msg.call_state and msg.call_state != alarm.call_state:
        alarm.call_state = msg.call_state
        _timeline(ctx, alarm, "call", msg.call_state,
                     "reported by the handset", at=ctx.received_at)
    if msg.sms_state and msg.sms_state != alarm.sms_state:
        alarm.sms_state = msg.sms_state
        _timeline(ctx, alarm, "sms", msg.sms_state,
                     "reported by the handset", at=ctx.received_at)
    if msg.type == "last_gasp":
        _timeline(ctx, alarm, ctx.channel, "last_gasp",
                     f"battery {msg.bat} mV: the handset is switching off", at=ctx.received_at)


def add_represses(ctx: Context, alarm: AlarmState, press: int) -> None:
    """ch.press (docs/protocol.md): the button held again while the alarm was open. One
    `button`/`repress` step per hold not on the timeline yet (a later message repeats the
    count; one that skipped a count fills it in)."""
    known = ctx.session.connection().execute(
        select(func.count()).select_from(AlarmEvent.__table__).where(
            AlarmEvent.alarm_id == alarm.id, AlarmEvent.kind == "repress")).scalar_one()
    known += sum(1 for row in ctx.rows.timeline
                 if row["alarm_id"] == alarm.id and row["kind"] == "repress")
    for n in range(known + 2, press + 1):
        _timeline(ctx, alarm, "button", "repress", f"press={n}", at=ctx.received_at)


def _timeline(ctx: Context, alarm: Alarm, channel: str, kind: str, detail: str,
              at: datetime) -> None:
    ctx.rows.timeline.append({"alarm_id": alarm.id, "channel": channel, "kind": kind,
                              "detail": detail, "at": at})


def settle_commands(ctx: Context) -> None:
    """Drop what the handset reports done; hand out what is still pending."""
    session, device = ctx.session, ctx.device
    ctx.answer = {"ok": True, "seq": ctx.message.seq, "cmds": []}
    if not device.commands_pending:
        return
    if ctx.message.cmd:
        session.execute(
            update(Command)
            .where(Command.device_id == device.id, Command.id <= ctx.message.cmd,
                   Command.done_at.is_(None))
            .values(done_at=ctx.received_at)
        )
    pending = session.scalars(
        select(Command).where(Command.device_id == device.id, Command.done_at.is_(None))
        .order_by(Command.id)
    ).all()
    if len(pending) != device.commands_pending:
        device.commands_pending = len(pending)
        session.execute(update(Device).where(Device.id == device.id)
                        .values(commands_pending=len(pending)))
    for command in pending:
        command.sent_at = ctx.received_at
        item = {"id": command.id, "type": command.type}
        if command.type == "config":
            item["set"] = json.loads(command.payload)
        ctx.answer["cmds"].append(item)


def detect_events(ctx: Context) -> None:
    device, base = ctx.device, {"ingested_at": ctx.ingested_at, "channel": ctx.channel}
    if ctx.alarm is not None:
        kind = "alarm.created" if ctx.alarm_created else "alarm.updated"
        ctx.events.append({"type": kind, **base, **alarm_summary(ctx.alarm, device)})
    for position in ctx.positions:
        ctx.events.append({"type": "position.added", **base, **position_summary(position)})
    ctx.events.append({
        "type": "device.updated", **base, "device_id": device.id,
        "message_type": ctx.message.type, "battery_mv": device.battery_mv,
        "signal_csq": device.signal_csq, "low_battery": device.low_battery,
        "flags": list(ctx.device_flags),
    })


def build_answer(ctx: Context) -> None:
    if ctx.alarm is not None:
        ctx.answer["alarm"] = {"aid": ctx.alarm.aid, "state": ctx.alarm.state}


# --- after commit ---------------------------------------------------------------

def publish_events(ctx: Context) -> None:
    for event in ctx.events:
        events.publish(event)


BYTE_STEPS: tuple[Callable[[Context], None], ...] = (check_size, require_signature, parse_body)
# In the write transaction. CHECK_STEPS may refuse and write nothing; STORE_STEPS never
# refuse; the session is flushed (ids) before AFTER_FLUSH_STEPS.
CHECK_STEPS: tuple[Callable[[Context], None], ...] = (
    load_device, verify_signature, check_sequence, validate_values,
)
STORE_STEPS: tuple[Callable[[Context], None], ...] = (
    advance_sequence, store_message, update_device, join_alarm, store_position,
    add_message_timeline, settle_commands, ota.heartbeat_step,
)
AFTER_FLUSH_STEPS: tuple[Callable[[Context], None], ...] = (detect_events, build_answer)
WRITE_STEPS = CHECK_STEPS + STORE_STEPS + AFTER_FLUSH_STEPS
AFTER_COMMIT_STEPS: tuple[Callable[[Context], None], ...] = (publish_events,)
STEPS = BYTE_STEPS + WRITE_STEPS + AFTER_COMMIT_STEPS


def ingest_device_message(body: bytes, signature: str | None, channel: str, source: str,
                          *, factory: sessionmaker | None = None,
                          now: float | None = None) -> IngestResult:
    """Run one signed message through the pipeline; never raises MessageRefused.

    `factory` defaults to the current Flask app's sessions (call inside an app
    context). Unexpected errors (a database down) propagate: the HTTP edge turns
    them into a 500 that the handset retries.
    """
    ingested_at = time.time()
    factory = factory or db.session_factory()
    ctx = Context(body=body, signature=signature, channel=channel, source=source,
                  ingested_at=ingested_at, received_at=utcnow(),
                  now=ingested_at if now is None else now)
    ctx.factory = factory
    try:
        for step in BYTE_STEPS:
            step(ctx)
        _GroupCommitter.submit(factory, ctx)
    except MessageRefused as refused:
        return _refuse(ctx, refused, factory)
    for step in AFTER_COMMIT_STEPS:
        step(ctx)
    return IngestResult(200, ctx.answer)


def _run_write_steps(ctx: Context, factory: sessionmaker) -> None:
    for attempt in range(1, _WRITE_ATTEMPTS + 1):
        _reset(ctx)
        try:
            with db.write_session(factory) as session:
                ctx.session, ctx.rows = session, BatchRows()
                for step in CHECK_STEPS + STORE_STEPS:
                    step(ctx)
                ctx.rows.write(session, ctx.batch_devices.values())
                for step in AFTER_FLUSH_STEPS:
                    step(ctx)
            return
        except (IntegrityError, OperationalError) as exc:
            # A concurrent writer won a race (unique aid, lock timeout): start again
            # from a fresh read; the refusal or success is then decided on its result.
            if attempt == _WRITE_ATTEMPTS:
                raise
            log.info("ingest retry %d after %s", attempt, type(exc).__name__)
        finally:
            ctx.session = ctx.rows = ctx.batch_devices = None


class _GroupCommitter:
    """One writer thread per database and process: it stores every waiting message in
    one transaction (refusals are decided before anything is written) and commits
    them together. Each request waits for the commit that holds its message before
    it is answered."""

    MAX_BATCH = 64
    IDLE_EXIT_S = 10.0  # the thread ends when idle; the next message starts another
    # A request gives up after this (a 500 the handset retries with a new seq; if the
    # write lands later, the alarm is still one: the retry joins it by its aid).
    WAIT_S = 60.0

    def __init__(self, factory: sessionmaker) -> None:
        self._factory = factory
        self._pid = os.getpid()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="tgd-ingest-writer", daemon=True)
        self._thread.start()

    @staticmethod
    def submit(factory: sessionmaker, ctx: Context) -> None:
        """Returns once the message is committed; raises its refusal or the failure."""
        item = _Pending(ctx)
        _GroupCommitter.enqueue(factory, item)
        if not item.done.wait(_GroupCommitter.WAIT_S):
            raise IngestTimeout(f"not stored within {_GroupCommitter.WAIT_S:.0f} s")
        if item.outcome is not None:
            raise item.outcome
        if not item.stored:
            raise IngestTimeout("the writer stopped before storing the message")

    @staticmethod
    def enqueue(factory: sessionmaker, item: _Pending) -> None:
        with _committers_lock:
            committer = _committers.get(id(factory))
            if (committer is None or committer._factory is not factory
                    or committer._pid != os.getpid()):  # a forked child has no writer thread
                committer = _committers[id(factory)] = _GroupCommitter(factory)
            committer._queue.put(item)

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.IDLE_EXIT_S)
            except queue.Empty:
                with _committers_lock:
                    if self._queue.empty():
                        if _committers.get(id(self._factory)) is self:
                            del _committers[id(self._factory)]
                        return
                continue
            batch = [first]
            while len(batch) < self.MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(batch)
            except BaseException:
                # The thread dies: unregister first (the next message starts a new writer),
                # then release everyone waiting on this one (unstored = a failure, a 500).
                with _committers_lock:
                    if _committers.get(id(self._factory)) is self:
                        del _committers[id(self._factory)]
                while True:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                for item in batch:
                    item.done.set()
                raise
            for item in batch:
                item.done.set()

    def _write(self, batch: list[_Pending]) -> None:
        try:
            self._write_together(batch)
        except Exception:
            # Something unexpected (a bug, a constraint): nothing of the batch is stored.
            # Write each message alone so that one bad message cannot sink the others.
            log.exception("ingest batch of %d failed: writing its messages one by one", len(batch))
            for item in batch:
                item.outcome = None
                try:
                    if item.ctx is None:
                        _store_row(self._factory, item.row)
                    else:
                        _run_write_steps(item.ctx, self._factory)
                    item.stored = True
                except Exception as exc:  # refused, or failed alone: answered 4xx/5xx
                    item.outcome = exc

    def _write_together(self, batch: list[_Pending]) -> None:
        """One transaction, one flush and one commit for the whole batch."""
        with db.write_session(self._factory) as session:
            ids = {item.ctx.envelope["dev"] for item in batch if item.ctx is not None}
            devices = load_device_states(session, ids)
            rows = BatchRows()
            accepted = []
            refusals = []  # security-log rows, stored after the messages (a SAVEPOINT)
            for item in batch:
                if item.ctx is None:  # a security-log row from a refusal before the batch
                    refusals.append(item.row)
                    continue
                ctx = item.ctx
                _reset(ctx)
                ctx.session, ctx.batch_devices, ctx.rows = session, devices, rows
                try:
                    for step in CHECK_STEPS:
                        step(ctx)
                except MessageRefused as refused:  # refused before writing anything
                    refusals.append(_refusal_row(ctx, refused))  # logged in this same commit
                    refused.logged = True
                    item.outcome = refused
                    continue
                for step in STORE_STEPS:
                    step(ctx)
                accepted.append(ctx)
            rows.write(session, devices.values())
            for ctx in accepted:
                for step in AFTER_FLUSH_STEPS:
                    step(ctx)
            # Sanitised and aggregated; a row that still fails is dropped alone, never
            # the batch with its alarms (security_log.Aggregator).
            security_log.aggregator(self._factory).store(session, refusals)
        for item in batch:  # committed
            if item.ctx is not None:
                item.ctx.session = item.ctx.batch_devices = item.ctx.rows = None
            item.stored = item.outcome is None


class _Pending:
    """A message (ctx) or a bare security-log row (row) waiting for the writer."""

    __slots__ = ("ctx", "row", "done", "outcome", "stored")

    def __init__(self, ctx: Context | None) -> None:
        self.ctx = ctx
        self.row = None
        self.done = threading.Event()
        self.outcome: BaseException | None = None
        self.stored = False


def _store_row(factory: sessionmaker, row) -> None:
    with db.write_session(factory) as session:
        security_log.aggregator(factory).store(session, [row])


class IngestTimeout(Exception):
    """The message could not be stored in time; the handset retries."""


_committers: dict[int, _GroupCommitter] = {}
_committers_lock = threading.Lock()


def _reset(ctx: Context) -> None:
    ctx.device = ctx.alarm = ctx.answer = ctx.seq_state = None
    ctx.alarm_created, ctx.batch_devices, ctx.rows, ctx.newest = False, None, None, True
    ctx.positions, ctx.device_flags, ctx.events = [], [], []


def _refuse(ctx: Context, refused: MessageRefused, factory: sessionmaker) -> IngestResult:
    if not getattr(refused, "logged", False):
        log_ingest_refusal(factory, _refusal_row(ctx, refused))
    answer = {"ok": False, "error": refused.code, "detail": refused.detail, **refused.extra}
    seq = ctx.envelope.get("seq") if isinstance(ctx.envelope, dict) else None
    if isinstance(seq, int) and not isinstance(seq, bool):
        answer["seq"] = seq  # which message this refuses (MQTT answers arrive apart from it)
    return IngestResult(refused.status, answer)


def _refusal_row(ctx: Context, refused: MessageRefused):
    dev = ctx.envelope.get("dev") if isinstance(ctx.envelope, dict) else None
    dev = dev if isinstance(dev, str) else None
    return refusal_row(ctx.channel, ctx.source, refused.code, device_id=dev,
                       detail=refused.detail, body=ctx.body)


def log_ingest_refusal(factory: sessionmaker, row) -> None:
    """Store a security-log row through the writer (batched with the messages)."""
    item = _Pending(None)
    item.row = row
    _GroupCommitter.enqueue(factory, item)
    if not item.done.wait(_GroupCommitter.WAIT_S):
        raise IngestTimeout("security log not written in time")
    if item.outcome is not None:
        raise item.outcome


# --- building blocks shared with the SMS channel --------------------------------------

def open_or_join_alarm(session: Session, device: Device, aid: str | None, channel: str,
                       at: datetime | None, *, test: bool = False,
                       received_at: datetime | None = None) -> tuple[Alarm, bool]:
    """The alarm of (device, aid), created if new: (alarm, created).

    With an `aid`: the alarm with that aid; else an open alarm that an AML SMS
    opened without an aid (it takes this aid); else a new one. Without an `aid`
    (SMS): the device's open alarm younger than ALARM_JOIN_WINDOW, else a new one
    without an aid that the first data message will join. Safe against a
    concurrent request creating the same alarm (ON CONFLICT DO NOTHING on the
    unique (device, aid)).
    """
    received_at = received_at or utcnow()
    # The lookups below need no flush of what the session holds (alarms are inserted
    # with Core statements, at once): the pending positions and timelines of a batch
    # are flushed together at its end.
    with session.no_autoflush:
        return _open_or_join_alarm(session, device, aid, channel, at, test, received_at)


def _open_or_join_alarm(session: Session, device: Device, aid: str | None, channel: str,
                        at: datetime | None, test: bool,
                        received_at: datetime) -> tuple[Alarm, bool]:
    if aid is None:
        alarm = _recent_open_alarm(session, device.id, received_at, aid_missing=False)
        if alarm is not None:
            return alarm, False
        alarm = Alarm(device_id=device.id, aid=None, test=test, triggered_at=at,
                      created_at=received_at, updated_at=received_at, first_channel=channel)
        session.add(alarm)
        session.flush()
        return alarm, True

    alarm = _alarm_by_aid(session, device.id, aid)
    if alarm is not None:
        return alarm, False
    orphan = _recent_open_alarm(session, device.id, received_at, aid_missing=True)
    if orphan is not None:
        joined = session.execute(
            update(Alarm).where(Alarm.id == orphan.id, Alarm.aid.is_(None))
            .values(aid=aid, triggered_at=at or orphan.triggered_at)
            .execution_options(synchronize_session=False)
        ).rowcount
        if joined:
            session.refresh(orphan)
            return orphan, False
    insert = _insert_for(session)
    result = session.execute(
        insert(Alarm).values(device_id=device.id, aid=aid, state="received", test=test,
                             triggered_at=at, created_at=received_at, updated_at=received_at,
                             first_channel=channel, close_note="", notes="")
        .on_conflict_do_nothing(index_elements=["device_id", "aid"])
    )
    alarm = _alarm_by_aid(session, device.id, aid)
    if alarm is None:  # cannot happen: the conflicting row is committed or ours
        raise IntegrityError("alarm vanished after insert", None, Exception(aid))
    return alarm, bool(result.rowcount)


def add_position(session: Session, device: Device, alarm: Alarm | None, lat: float, lon: float,
                 acc_m: int | None, method: str, fix_at: datetime | None, channel: str,
                 *, cell: str | None = None, received_at: datetime | None = None) -> Position:
    """Store a position and make it the device's last one if it is the newest."""
    received_at = received_at or utcnow()
    position = Position(device_id=device.id, alarm_id=alarm.id if alarm is not None else None,
                        lat=lat, lon=lon, acc_m=acc_m, method=method, fix_at=fix_at,
                        received_at=received_at, channel=channel, cell=cell)
    session.add(position)
    _make_last_fix(device, lat, lon, acc_m, method, fix_at, received_at)
    return position


def _make_last_fix(device, lat: float, lon: float, acc_m: int | None, method: str,
                   fix_at: datetime | None, received_at: datetime) -> None:
    """The device's last known position becomes this one if it is the newest."""
    if device.last_fix_at is None or (fix_at or received_at) >= device.last_fix_at:
        device.last_lat, device.last_lon, device.last_acc_m = lat, lon, acc_m
        device.last_method, device.last_fix_at = method, fix_at or received_at


def add_timeline(session: Session, alarm: Alarm, channel: str, kind: str, detail: str = "",
                 at: datetime | None = None) -> AlarmEvent:
    entry = AlarmEvent(alarm_id=alarm.id, channel=channel, kind=kind, detail=detail,
                       at=at or utcnow())
    session.add(entry)
    return entry


def locate_cell(session: Session, cell: dict) -> tuple[float, float, int] | None:
    """The cell's circle from the cell table; an unknown cell is recorded for later survey."""
    try:
        from . import cells
    except ImportError:  # the cell table module is optional
        return None
    located = cells.locate(session, [cell])
    if located is None:
        _remember_unknown_cell(session, cell)
        return None
    lat, lon, radius = located
    return lat, lon, int(radius)


def _remember_unknown_cell(session: Session, cell: dict) -> None:
    radio = {"WCDMA": "UMTS"}.get(cell["rat"], cell["rat"])
    insert = _insert_for(session)
    session.execute(
        insert(Cell).values(radio=radio, mcc=cell["mcc"], mnc=cell["mnc"], area=cell["lac"],
                            cell=cell["ci"], lat=None, lon=None, range_m=None, samples=0,
                            updated=utcnow())
        .on_conflict_do_nothing(index_elements=["radio", "mcc", "mnc", "area", "cell"])
    )


def alarm_summary(alarm: Alarm, device: Device) -> dict:
    return {
        "alarm_id": alarm.id, "device_id": device.id, "aid": alarm.aid, "state": alarm.state,
        "test": alarm.test, "special_number": device.special_number,
        "created_at": alarm.created_at.isoformat(),
        "lat": device.last_lat, "lon": device.last_lon, "acc_m": device.last_acc_m,
        "method": device.last_method,
        "fix_at": device.last_fix_at.isoformat() if device.last_fix_at else None,
    }


def position_summary(position: Position) -> dict:
    return {
        "position_id": position.id, "device_id": position.device_id,
        "alarm_id": position.alarm_id, "lat": position.lat, "lon": position.lon,
        "acc_m": position.acc_m, "method": position.method,
        "fix_at": position.fix_at.isoformat() if position.fix_at else None,
        "received_at": position.received_at.isoformat(),
    }


def _alarm_by_aid(session: Session, device_id: str, aid: str) -> Alarm | None:
    return session.scalars(
        select(Alarm).where(Alarm.device_id == device_id, Alarm.aid == aid)
    ).one_or_none()


def _recent_open_alarm(session: Session, device_id: str, now: datetime,
                       aid_missing: bool) -> Alarm | None:
    conditions = [Alarm.device_id == device_id, Alarm.state != "closed",
                  Alarm.created_at >= now - ALARM_JOIN_WINDOW]
    if aid_missing:
        conditions.append(Alarm.aid.is_(None))
    return session.scalars(
        select(Alarm).where(and_(*conditions)).order_by(Alarm.created_at.desc()).limit(1)
    ).first()


def _insert_for(session: Session):
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _same_fix(device: Device, lat: float, lon: float, method: str,
              fix_at: datetime | None) -> bool:
    return (device.last_lat == lat and device.last_lon == lon and device.last_method == method
            and (fix_at is None or fix_at == device.last_fix_at))


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
