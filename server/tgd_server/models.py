"""Every table of the server (docs/interfaces.md §5).

One declarative base; the Alembic migrations in migrations/ create the same
schema (a test compares them). Times are stored as timezone-aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ROLES = ("operator", "supervisor", "technician", "admin")
ALARM_STATES = ("received", "acknowledged", "closed")
INBOUND_SMS_STATUSES = ("accepted", "rejected", "unknown_sender", "review")

# Stable constraint names so that migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator):
    """DateTime that always comes back timezone-aware (SQLite drops the zone).

    A TypeDecorator: a result_processor override on a DateTime subclass is lost when
    the dialect adapts the type (sqlite.DATETIME), so naive values leaked out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value, dialect):
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime()}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]


class ApiToken(Base):
    """A bearer token for tools. Only its SHA-256 is stored; the token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(64), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined")


class Case(Base):
    """The protected person's file: only operators and supervisors may see it."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    judicial_ref: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    address: Mapped[str] = mapped_column(Text, default="")
    # Where the address is (WGS84), when known: the console marks it on the map.
    address_lat: Mapped[float | None] = mapped_column(Float)
    address_lon: Mapped[float | None] = mapped_column(Float)
    police_notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    special_number: Mapped[str] = mapped_column(String(20), unique=True)
    imei: Mapped[str] = mapped_column(String(20), default="")
    iccid: Mapped[str] = mapped_column(String(24), default="")
    fw_version: Mapped[str] = mapped_column(String(32), default="")
    # The HMAC key (64 hex digits). Write-only through the API: no answer carries it.
    key_hex: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    heartbeat_interval_s: Mapped[int] = mapped_column(Integer, default=1800)
    low_battery_mv: Mapped[int] = mapped_column(Integer, default=3550)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None]
    # What the handset last told us.
    last_seen_at: Mapped[datetime | None]
    last_heartbeat_at: Mapped[datetime | None]
    battery_mv: Mapped[int | None]
    signal_csq: Mapped[int | None]
    low_battery: Mapped[bool] = mapped_column(Boolean, default=False)
    last_gasp_at: Mapped[datetime | None]
    # MQTT presence: the handset's retained status, "online" or "offline" (its last will).
    link_state: Mapped[str | None] = mapped_column(String(8))
    link_changed_at: Mapped[datetime | None]
    last_cell: Mapped[str | None] = mapped_column(Text)  # JSON of protocol.md `cell`
    last_lat: Mapped[float | None] = mapped_column(Float)
    last_lon: Mapped[float | None] = mapped_column(Float)
    last_acc_m: Mapped[int | None]
    last_method: Mapped[str | None] = mapped_column(String(1))
    last_fix_at: Mapped[datetime | None]
    # Replay window (protocol.md): highest seq accepted and a 64-bit map of the ones below.
    seq_high: Mapped[int] = mapped_column(BigInteger, default=0)
    seq_bitmap: Mapped[int] = mapped_column(BigInteger, default=0)  # two's complement of the u64
    # Commands queued and not yet reported done: the ingest looks them up only when > 0.
    commands_pending: Mapped[int] = mapped_column(Integer, default=0)

    case: Mapped[Case | None] = relationship()


class Alarm(Base):
    __tablename__ = "alarms"
    __table_args__ = (
        UniqueConstraint("device_id", "aid"),
        Index("ix_alarms_state_created", "state", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    # 8 hex digits from the handset; NULL while only an AML SMS (no aid) has opened it.
    aid: Mapped[str | None] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16), default="received")
    test: Mapped[bool] = mapped_column(Boolean, default=False)
    triggered_at: Mapped[datetime | None]  # device time of the trigger
    created_at: Mapped[datetime] = mapped_column(default=utcnow)  # first message received
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    first_channel: Mapped[str] = mapped_column(String(16))
    call_state: Mapped[str | None] = mapped_column(String(16))
    sms_state: Mapped[str | None] = mapped_column(String(16))
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    close_note: Mapped[str] = mapped_column(Text, default="")
    notes: Mapped[str] = mapped_column(Text, default="")

    device: Mapped[Device] = relationship()


class AlarmEvent(Base):
    """The channel timeline of an alarm: data messages, SMS, call states, console actions."""

    __tablename__ = "alarm_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    channel: Mapped[str] = mapped_column(String(16))  # http, mqtt, sms, call, console
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")


class Position(Base):
    __tablename__ = "positions"
    __table_args__ = (Index("ix_positions_device_received", "device_id", "received_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    alarm_id: Mapped[int | None] = mapped_column(ForeignKey("alarms.id"), index=True)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    acc_m: Mapped[int | None]
    method: Mapped[str] = mapped_column(String(1))  # G or C
    fix_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    channel: Mapped[str] = mapped_column(String(16))
    cell: Mapped[str | None] = mapped_column(Text)


class DeviceMessage(Base):
    """Every accepted signed message, verbatim (nothing is ever lost)."""

    __tablename__ = "device_messages"
    __table_args__ = (UniqueConstraint("device_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    body: Mapped[str] = mapped_column(Text)


class Command(Base):
    """A command queued for a handset, handed out in every answer until it reports it done."""

    __tablename__ = "commands"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    type: Mapped[str] = mapped_column(String(16))  # locate, config
    payload: Mapped[str] = mapped_column(Text, default="{}")  # JSON of `set` for config
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    sent_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]


class AuditLog(Base):
    """Who looked at or changed what (cases, alarms, positions, devices, users)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="")


class SecurityLog(Base):
    """A refused request (bad signature, replay, malformed body, failed login).

    Repeats of one refusal (same channel, source, event and device) within a few
    minutes are one row: `repeats` counts them, `last_at` is the last one's time.
    """

    __tablename__ = "security_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    channel: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(128), default="")
    event: Mapped[str] = mapped_column(String(32))  # the error code
    device_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="")
    # The first bytes of a refused message, so that a refused alarm can still be read.
    body_excerpt: Mapped[str] = mapped_column(Text, default="")
    repeats: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    last_at: Mapped[datetime | None] = mapped_column()


class Cell(Base):
    """A radio cell as a circle (OpenCelliD layout), for cell-only fixes."""

    __tablename__ = "cells"
    __table_args__ = (UniqueConstraint("radio", "mcc", "mnc", "area", "cell"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    radio: Mapped[str] = mapped_column(String(8))
    mcc: Mapped[int] = mapped_column(Integer)
    mnc: Mapped[int] = mapped_column(Integer)
    area: Mapped[int] = mapped_column(Integer)
    cell: Mapped[int] = mapped_column(BigInteger)
    lat: Mapped[float | None] = mapped_column(Float)  # NULL: seen but not located yet
    lon: Mapped[float | None] = mapped_column(Float)
    range_m: Mapped[int | None]
    samples: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[datetime] = mapped_column(default=utcnow)


class InboundSms(Base):
    """Every SMS the gateway received, kept for review (AML and anything else)."""

    __tablename__ = "inbound_sms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    sender: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"))
    alarm_id: Mapped[int | None] = mapped_column(ForeignKey("alarms.id"))
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None]


class Release(Base):
    """A signed over-the-air release (issue 17): the `.tgdrel` as uploaded, verified against
    the configured release public keys. The server holds no private key: it cannot make one."""

    __tablename__ = "releases"

    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    manifest: Mapped[str] = mapped_column(Text)  # line 1, exactly as signed
    signature_hex: Mapped[str] = mapped_column(String(128))
    key_id: Mapped[str] = mapped_column(String(16))
    min_version: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    bundle: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)  # read only to serve it
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Rollout(Base):
    """A staged roll-out of one release (rollout.py's state, stored)."""

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(ForeignKey("releases.version"), index=True)
    canary: Mapped[str] = mapped_column(String(32))
    stages: Mapped[str] = mapped_column(String(64))  # JSON list of percentages
    canary_timeout_s: Mapped[int] = mapped_column(Integer)
    phase: Mapped[str] = mapped_column(String(16))
    stage: Mapped[int] = mapped_column(Integer, default=-1)
    phase_started_at: Mapped[float] = mapped_column(Float)
    canary_offered_at: Mapped[float | None] = mapped_column(Float)
    paused_phase: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeviceOta(Base):
    """A handset's last `ota` report and the last release it was offered (the fleet view)."""

    __tablename__ = "device_ota"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    slot: Mapped[str | None] = mapped_column(String(1))
    result: Mapped[str | None] = mapped_column(String(16))
    tried_version: Mapped[str | None] = mapped_column(String(32))
    reported_at: Mapped[datetime | None]
    offered_version: Mapped[str | None] = mapped_column(String(32))
    offered_at: Mapped[datetime | None]
    failed_version: Mapped[str | None] = mapped_column(String(32))
