"""Over-the-air updates on the server (issue 17): releases, roll-outs, the heartbeat offer.

- `store_release`: a `.tgdrel` upload, checked with the configured release PUBLIC keys
  (TGD_RELEASE_PUBS) by the same code as `tgd-flash release-verify`; the server holds
  no private key, so a compromised server cannot make a release a handset accepts.
- `heartbeat_step`: an ingest step. It stores the handset's `ota` report, feeds the
  roll-out state machine (rollout.py) and, for a heartbeat only, puts the offer into
  the answer: an alarm's answer never carries an update.
- `start` / `pause` / `resume` / `status`: the roll-out actions (REST and CLI), audited.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from tgd_flash import release_file
from tgd_flash.release_file import ReleaseError

from . import rollout as rm
from .models import AuditLog, Device, DeviceOta, Release, Rollout, User, utcnow

# A release body is refused above this (Flask's own limit, MAX_CONTENT_LENGTH, is 1 MiB);
# `tgd-flash release` refuses to make a larger one.
MAX_RELEASE_BYTES = release_file.MAX_RELEASE_BYTES
BUNDLE_URL = "/api/v1/fw/{version}/bundle"


class OtaError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


TRUSTED_FILE = "release_pubs"  # in TGD_VAR_DIR: one public key (64 hex) a line


def trusted_file(config=None) -> Path:
    return Path((config or current_app.config)["TGD_VAR_DIR"]) / TRUSTED_FILE


def release_pubs(config=None) -> list[bytes]:
    """The release public keys a release must verify with: TGD_RELEASE_PUBS, then the ones
    `tgd-server release trust` added (var/release_pubs). Read at each use: a key trusted or
    withdrawn applies at once, without a restart."""
    config = config or current_app.config
    items = [p.strip() for p in (config.get("TGD_RELEASE_PUBS", "") or "").split(",")]
    path = trusted_file(config)
    if path.exists():
        items += [ln.strip() for ln in path.read_text().splitlines()]
    keys = []
    for item in items:
        if item and not item.startswith("#"):
            key = release_file.parse_pub_hex(item)
            if key not in keys:
                keys.append(key)
    return keys


# --- releases -------------------------------------------------------------------------

def store_release(session: Session, data: bytes, pubs: list[bytes], user: User | None) -> Release:
    """The verified release, added to the session; OtaError (nothing added) otherwise."""
    if len(data) > MAX_RELEASE_BYTES:
        raise OtaError(413, "too_large", f"a release is at most {MAX_RELEASE_BYTES} bytes, "
                                         f"this one is {len(data)}")
    if not pubs:
        raise OtaError(422, "no_release_key", "no release public key is configured "
                                              "(TGD_RELEASE_PUBS): nothing can be verified")
    try:
        release = release_file.check_release(data, pubs)
    except ReleaseError as exc:
        raise OtaError(422, "release_refused", str(exc)) from None
    m = release.manifest
    if session.get(Release, m["version"]) is not None:
        raise OtaError(409, "release_exists", f"release {m['version']} is already on the server; "
                                              "a new build needs a new version")
    row = Release(version=m["version"], manifest=release.manifest_line.decode("utf-8"),
                  signature_hex=release.signature.hex(), key_id=str(m["key"])[:16],
                  min_version=m["min"], size=m["size"], sha256=m["sha256"],
                  bundle=release.bundle, uploaded_by=user.id if user is not None else None)
    session.add(row)
    return row


def release_route(row: Release) -> str:
    """"mpy" or "app" (release_file.ROUTES): from its signed manifest, checked at upload."""
    return json.loads(row.manifest)["route"]


def release_json(row: Release) -> dict:
    return {"version": row.version, "route": release_route(row), "size": row.size, "sha256": row.sha256, "key": row.key_id,
            "min": row.min_version, "uploaded_at": row.uploaded_at.isoformat() if row.uploaded_at else None,
            "url": BUNDLE_URL.format(version=row.version)}


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of `Range: bytes=N-M` / `bytes=N-` / `bytes=-K`; None: the whole
    file; OtaError 416 when nothing of it is in the file."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None  # not a single byte range: the whole file (RFC 9110 allows ignoring it)
    first_text, _, last_text = spec.strip().partition("-")
    try:
        if first_text == "":
            count = int(last_text)
            first, last = max(size - count, 0), size - 1
        else:
            first = int(first_text)
            last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if first < 0 or first >= size or last < first:
        raise OtaError(416, "range_not_satisfiable", f"the bundle has {size} bytes")
    return first, min(last, size - 1)


# --- roll-outs ------------------------------------------------------------------------

def to_state(row: Rollout) -> rm.RolloutState:
    release = row_release(row)
    return rm.RolloutState(version=row.version, min_version=release.min_version, canary=row.canary,
                           stages=tuple(json.loads(row.stages)), canary_timeout_s=row.canary_timeout_s,
                           phase=row.phase, stage=row.stage, phase_started_at=row.phase_started_at,
                           canary_offered_at=row.canary_offered_at, paused_phase=row.paused_phase,
                           reason=row.reason)


def row_release(row: Rollout) -> Release:
    release = Session.object_session(row).get(Release, row.version)
    assert release is not None  # a foreign key
    return release


def _actor(user: User | None, actor: str) -> dict:
    return {"user_id": user.id if user is not None else None,
            "username": user.username if user is not None else actor}


def save_state(session: Session, row: Rollout, state: rm.RolloutState, user: User | None,
               action: str, actor: str = "system") -> None:
    """Store a state. A person's action is audited; so is a change of phase or stage the
    server made itself (action "rollout_tick": audited as rollout_<new phase>, by "system")."""
    moved = (row.phase, row.stage) != (state.phase, state.stage)
    row.phase, row.stage, row.phase_started_at = state.phase, state.stage, state.phase_started_at
    row.canary_offered_at, row.paused_phase, row.reason = (state.canary_offered_at,
                                                           state.paused_phase, state.reason)
    row.updated_at = utcnow()
    if action == "rollout_tick":
        if not moved:
            return
        action = f"rollout_{state.phase}"
    session.add(AuditLog(**_actor(user, actor), action=action, object_type="rollout",
                         object_id=str(row.id), detail=rm.summary(state)[:500]))


def current_rollout(session: Session) -> Rollout | None:
    return session.scalars(select(Rollout).where(Rollout.phase.in_(rm.ACTIVE))
                           .order_by(Rollout.id.desc()).limit(1)).first()


def start(session: Session, fields: dict, user: User | None, now: float | None = None,
          actor: str = "system") -> Rollout:
    now = time.time() if now is None else now
    unknown = set(fields) - {"version", "canary", "stages", "canary_timeout_s"}
    if unknown:
        raise OtaError(400, "unknown_field", f"unknown keys: {', '.join(sorted(unknown))[:200]}")
    version = fields.get("version")
    if not isinstance(version, str) or session.get(Release, version) is None:
        raise OtaError(404, "no_release", f"no release {version!r} on the server: upload it first")
    canary = fields.get("canary")
    device = session.get(Device, canary) if isinstance(canary, str) else None
    if device is None or device.retired_at is not None:
        raise OtaError(422, "bad_canary", f"canary {canary!r} is not a registered handset")
    release = session.get(Release, version)
    try:
        state = rm.new_rollout(version, release.min_version, canary, fields.get("stages", [34, 100]),
                               fields.get("canary_timeout_s", 3600), now)
    except rm.RolloutError as exc:
        raise OtaError(422, "bad_rollout", str(exc)) from None
    current = current_rollout(session)
    if current is not None:
        if current.phase not in (rm.PAUSED, rm.COMPLETE):
            raise OtaError(409, "rollout_active", f"the roll-out of {current.version} is "
                                                  f"{current.phase}: pause it first")
        current.phase, current.updated_at = rm.STOPPED, utcnow()
        session.add(AuditLog(**_actor(user, actor), action="rollout_stop",
                             object_type="rollout", object_id=str(current.id),
                             detail=f"{current.version}: replaced by {version}"))
    row = Rollout(version=version, canary=canary, stages=json.dumps(list(state.stages)),
                  canary_timeout_s=state.canary_timeout_s, phase=state.phase, stage=state.stage,
                  phase_started_at=state.phase_started_at, canary_offered_at=None,
                  paused_phase=None, reason="", created_by=user.id if user else None)
    session.add(row)
    session.flush()
    session.add(AuditLog(**_actor(user, actor), action="rollout_start", object_type="rollout", object_id=str(row.id),
                         detail=f"{version}: canary {canary}, stages {list(state.stages)}, "
                                f"canary timeout {state.canary_timeout_s} s"))
    return row


def _require_current(session: Session) -> Rollout:
    row = current_rollout(session)
    if row is None:
        raise OtaError(404, "no_rollout", "no roll-out is under way")
    return row


def pause(session: Session, user: User | None, reason: str = "", actor: str = "system") -> Rollout:
    row = _require_current(session)
    state = to_state(row)
    if state.phase == rm.PAUSED:
        raise OtaError(409, "already_paused", f"the roll-out of {row.version} is already paused")
    who = _actor(user, actor)["username"]
    save_state(session, row, rm.pause(state, reason or f"paused by {who}"), user, "rollout_pause",
               actor)
    return row


def resume(session: Session, user: User | None, now: float | None = None,
           actor: str = "system") -> Rollout:
    row = _require_current(session)
    try:
        state = rm.resume(to_state(row), time.time() if now is None else now)
    except rm.RolloutError as exc:
        raise OtaError(409, "not_paused", str(exc)) from None
    if state.phase == rm.CANARY:
        ota = session.get(DeviceOta, row.canary)
        if ota is not None and ota.failed_version == row.version:
            raise OtaError(409, "canary_failed", f"canary {row.canary} failed {row.version}: start a "
                                                 "new roll-out with a fixed release or another canary")
    save_state(session, row, state, user, "rollout_resume", actor)
    return row


def status(session: Session, now: float | None = None) -> dict | None:
    """The current roll-out (its clock applied first) and the fleet's counts."""
    row = current_rollout(session)
    if row is None:
        return None
    state = rm.tick(to_state(row), time.time() if now is None else now)
    if state != to_state(row):
        save_state(session, row, state, None, "rollout_tick")
    on_version = session.scalar(select(_count()).select_from(Device).where(
        Device.fw_version == row.version, Device.retired_at.is_(None)))
    offered = session.scalar(select(_count()).select_from(DeviceOta).where(
        DeviceOta.offered_version == row.version))
    failed = session.scalar(select(_count()).select_from(DeviceOta).where(
        DeviceOta.failed_version == row.version))
    body = {k: v for k, v in asdict(state).items() if k != "min_version"}
    body.update(id=row.id, stages=list(state.stages), summary=rm.summary(state),
                offered=offered, on_version=on_version, failed=failed)
    return body


def _count():
    from sqlalchemy import func

    return func.count()


# --- the heartbeat --------------------------------------------------------------------

def offer_json(release: Release) -> dict:
    return {"version": release.version, "manifest": release.manifest, "sig": release.signature_hex,
            "url": BUNDLE_URL.format(version=release.version)}


def heartbeat_step(ctx) -> None:
    """Ingest step (after the answer is made): the `ota` report, the roll-out, the offer.
    Without an `ota` field and with no roll-out under way it costs one indexed query
    per batch of messages (not per message)."""
    msg, session = ctx.message, ctx.session
    ota = None
    if msg.ota is not None and ctx.newest:
        ota = session.get(DeviceOta, msg.dev) or _new_ota(session, msg.dev)
        ota.slot, ota.result, ota.tried_version = msg.ota.slot, msg.ota.res, msg.ota.ver
        ota.reported_at = ctx.received_at
        if msg.ota.res in rm.FAILURES and msg.ota.ver:
            ota.failed_version = msg.ota.ver
    if msg.type != "heartbeat" or not ctx.newest:
        return  # the offer travels in a heartbeat's answer only, never an alarm's
    row = _batch_rollout(ctx, session)
    if row is None or row.phase not in rm.ACTIVE:
        return
    ota = ota or session.get(DeviceOta, msg.dev)
    state = before = to_state(row)
    was_offered = ota is not None and ota.offered_version == row.version
    report = rm.Report(msg.dev, msg.fw, msg.ota.res if msg.ota else None,
                       msg.ota.ver if msg.ota else None)
    state = rm.tick(rm.observe(state, report, was_offered, ctx.now), ctx.now)
    failed = ota is not None and ota.failed_version == row.version
    if rm.should_offer(state, msg.dev, msg.fw, failed):
        ctx.answer["update"] = offer_json(row_release(row))
        ota = ota or _new_ota(session, msg.dev)
        if ota.offered_version != row.version:
            ota.offered_version, ota.offered_at = row.version, ctx.received_at
        state = rm.offered(state, msg.dev, ctx.now)
    if state != before:
        save_state(session, row, state, None, "rollout_tick")


def _batch_rollout(ctx, session: Session) -> Rollout | None:
    """The roll-out under way, read once per ingest batch (ctx.rows.memo): a query per
    heartbeat was a round trip per message inside the writer's batch, which on
    PostgreSQL took the MQTT p99 at 575 msg/s from ~0.1 s to ~1 s (docs/benchmarks.md,
    "MQTT transport"). A tick of this batch that ends the roll-out is seen through the
    same object (its phase)."""
    memo = getattr(ctx.rows, "memo", None)
    if memo is None:
        return current_rollout(session)
    if "rollout" not in memo:
        memo["rollout"] = current_rollout(session)
    return memo["rollout"]


def _new_ota(session: Session, device_id: str) -> DeviceOta:
    row = DeviceOta(device_id=device_id)
    session.add(row)
    return row


def fleet(session: Session) -> list[dict]:
    """Every handset's version, slot and last update result (the devices page)."""
    rows = session.execute(
        select(Device.id, Device.fw_version, DeviceOta.slot, DeviceOta.result,
               DeviceOta.tried_version, DeviceOta.reported_at, DeviceOta.offered_version)
        .outerjoin(DeviceOta, DeviceOta.device_id == Device.id)
        .where(Device.retired_at.is_(None)).order_by(Device.id)
    ).all()
    return [dict(device_id=r[0], fw=r[1], slot=r[2], result=r[3], tried=r[4], reported_at=r[5],
                 offered=r[6]) for r in rows]
