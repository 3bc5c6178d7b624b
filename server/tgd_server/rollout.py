"""The roll-out state machine (issue 17), pure: who is offered a release, and when it stops.

A roll-out offers one release version in stages:

    canary   one handset only. It moves on when the canary comes back running the new
             version with `ota.res` "ok". It pauses by itself when the canary, after the
             offer, reports a failure or comes back on its old version (anything but
             "downloading"/"deferred"), or stays silent past `canary_timeout_s`.
    staged   stage i offers the handsets whose bucket (0..99, a hash of the version and
             the device id, so the same release always picks the same handsets) is below
             stages[i]. A stage lasts `canary_timeout_s`; then the next one starts. Any
             offered handset that reports a failure pauses the roll-out.
    complete the last stage (100 %) is reached: every handset is offered.
    paused   nobody is offered anything until `resume`.
    stopped  replaced by a newer roll-out.

Functions take a `RolloutState` and return a new one; I/O (the database, the
heartbeat answer) is in ota.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

CANARY, STAGED, COMPLETE, PAUSED, STOPPED = "canary", "staged", "complete", "paused", "stopped"
ACTIVE = (CANARY, STAGED, COMPLETE, PAUSED)
OFFERING = (CANARY, STAGED, COMPLETE)
FAILURES = ("rolled_back", "bad_sig", "bad_hash", "selftest_failed")
IN_PROGRESS = ("downloading", "deferred")
OTA_RESULTS = ("ok", *FAILURES, *IN_PROGRESS, "none")
MAX_STAGES = 10


class RolloutError(ValueError):
    """A roll-out that cannot be started or changed so; the message says why."""


@dataclass(frozen=True)
class RolloutState:
    version: str
    min_version: str
    canary: str
    stages: tuple[int, ...]
    canary_timeout_s: int
    phase: str = CANARY
    stage: int = -1  # -1: the canary; else the index in stages
    phase_started_at: float = 0.0  # when the canary was first offered / the stage began
    canary_offered_at: float | None = None
    paused_phase: str | None = None  # the phase a pause interrupted
    reason: str = ""


@dataclass(frozen=True)
class Report:
    """What a handset's heartbeat says: running firmware and its `ota` field (maybe absent)."""

    device_id: str
    fw: str
    res: str | None = None
    ver: str | None = None


def version_tuple(version: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return None


def new_rollout(version: str, min_version: str, canary: str, stages, canary_timeout_s: int,
                now: float) -> RolloutState:
    if not isinstance(stages, (list, tuple)):
        raise RolloutError("stages: give a list of percentages, e.g. [34, 100]")
    stages = tuple(stages)
    if not isinstance(canary, str) or not canary:
        raise RolloutError("canary is required: the one handset that takes the release first")
    if not stages or len(stages) > MAX_STAGES:
        raise RolloutError(f"stages: give 1 to {MAX_STAGES} percentages, e.g. [34, 100]")
    if any(not isinstance(p, int) or isinstance(p, bool) or not 1 <= p <= 100 for p in stages):
        raise RolloutError("stages: each is a percentage, an integer from 1 to 100")
    if list(stages) != sorted(set(stages)) or stages[-1] != 100:
        raise RolloutError("stages: increasing percentages ending with 100, e.g. [34, 100]")
    if (not isinstance(canary_timeout_s, int) or isinstance(canary_timeout_s, bool)
            or not 60 <= canary_timeout_s <= 30 * 86400):
        raise RolloutError("canary_timeout_s: seconds from 60 to 2592000 (30 days)")
    return RolloutState(version=version, min_version=min_version, canary=canary, stages=stages,
                        canary_timeout_s=canary_timeout_s, phase_started_at=now)


def bucket(version: str, device_id: str) -> int:
    """0..99, the same for a device and a version every time."""
    digest = hashlib.sha256(f"{version}:{device_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100


def eligible(state: RolloutState, device_id: str) -> bool:
    """Whether the roll-out, in its current phase, offers the release to this device."""
    if state.phase not in OFFERING:
        return False
    if device_id == state.canary or state.phase == COMPLETE:
        return True
    if state.phase == STAGED:
        return bucket(state.version, device_id) < state.stages[state.stage]
    return False


def should_offer(state: RolloutState, device_id: str, running: str, failed_this_version: bool) -> bool:
    """Offer when eligible, running an older version that `min` admits, and the device has
    not already failed this version (a failed handset is not sent round again)."""
    if failed_this_version or not eligible(state, device_id):
        return False
    have, new, oldest = version_tuple(running), version_tuple(state.version), version_tuple(state.min_version)
    if have is None or new is None or oldest is None:
        return False
    return oldest <= have < new


def offered(state: RolloutState, device_id: str, now: float) -> RolloutState:
    """The canary's first offer starts its clock."""
    if device_id == state.canary and state.phase == CANARY and state.canary_offered_at is None:
        return replace(state, canary_offered_at=now, phase_started_at=now)
    return state


def pause(state: RolloutState, reason: str) -> RolloutState:
    if state.phase not in OFFERING:
        return state
    return replace(state, phase=PAUSED, paused_phase=state.phase, reason=reason)


def resume(state: RolloutState, now: float) -> RolloutState:
    if state.phase != PAUSED:
        raise RolloutError(f"the roll-out of {state.version} is {state.phase}, not paused")
    phase = state.paused_phase or CANARY
    if phase == CANARY:  # the canary is offered again, and its clock starts again then
        return replace(state, phase=CANARY, paused_phase=None, reason="",
                       canary_offered_at=None, phase_started_at=now)
    return replace(state, phase=phase, paused_phase=None, reason="", phase_started_at=now)


def observe(state: RolloutState, report: Report, was_offered: bool, now: float) -> RolloutState:
    """A heartbeat report from `report.device_id`, which had (or had not) been offered this
    version before this heartbeat."""
    if state.phase not in OFFERING or not was_offered:
        return state
    on_new = report.fw == state.version
    about_this = report.ver == state.version
    if report.res in FAILURES and (about_this or report.ver is None):
        return pause(state, f"{report.device_id} reported {report.res} for {state.version}")
    if report.device_id != state.canary or state.phase != CANARY:
        return state
    if on_new and report.res == "ok":
        return replace(state, phase=STAGED, stage=0, phase_started_at=now, reason="")
    if report.res in IN_PROGRESS:
        return state
    if not on_new and not about_this:
        # Not taken yet: its report is still about an earlier version (the handset ran
        # out of heap at that heartbeat before it could say `downloading`: campaign seed
        # 43 paused a roll-out for it). Its time limit judges it, not this heartbeat.
        return state
    what = f"runs {report.fw}" if not on_new else f"reports {report.res or 'no ota result'}"
    return pause(state, f"canary {report.device_id} came back after the offer and {what}, "
                        f"not {state.version} with ota.res ok")


def tick(state: RolloutState, now: float) -> RolloutState:
    """Time passing: the canary's limit, and the end of a stage."""
    if state.phase == CANARY and state.canary_offered_at is not None:
        if now - state.canary_offered_at > state.canary_timeout_s:
            return pause(state, f"canary {state.canary} did not come back on {state.version} "
                                f"within {state.canary_timeout_s} s")
    if state.phase == STAGED and now - state.phase_started_at >= state.canary_timeout_s:
        if state.stage + 1 >= len(state.stages):
            return replace(state, phase=COMPLETE)
        nxt = replace(state, stage=state.stage + 1, phase_started_at=now)
        return replace(nxt, phase=COMPLETE) if nxt.stages[nxt.stage] == 100 else nxt
    if state.phase == STAGED and state.stages[state.stage] == 100:
        return replace(state, phase=COMPLETE)
    return state


def summary(state: RolloutState) -> str:
    where = {CANARY: f"canary {state.canary}",
             STAGED: f"stage {state.stage + 1}/{len(state.stages)} ({state.stages[max(state.stage, 0)]} %)",
             COMPLETE: "every handset", PAUSED: f"paused: {state.reason}",
             STOPPED: "stopped"}[state.phase]
    return f"{state.version}: {where}"
