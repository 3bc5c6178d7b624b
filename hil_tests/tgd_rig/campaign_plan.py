"""The campaign's plan: a seeded generator of life sequences, and the replay file.

Pure: no rig, no clock, no I/O except `save_replay`/`load_replay`. `generate(seed,
steps, handsets)` gives the same list of `Step`s for the same arguments on any
machine; a replay file is that list (plus the seed and settings) in JSON, so a
failing run is reproduced by executing the same steps again (`tgd-rig campaign
--replay FILE`).

The vocabulary (docs/hil.md "Campaign") is weighted like real life: most of a
handset's life is idle time and short brushes of the button; alarms, operators,
police behaviours and faults come less often. The generator keeps a small model of
what it already asked for (is an alarm probably open on this handset?) only to
choose meaningful steps (a close when there is something to close); the executor
resolves every target at run time and notes a step that had nothing to act on.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPLAY_FORMAT = 1

# kind: (weight, family). Families group the events in the campaign's figures.
VOCABULARY: dict[str, tuple[float, str]] = {
    # button
    "short_press": (8, "button"),
    "hold": (5, "button"),
    "hold_while_open": (3, "button"),
    "hold_during_boot": (1, "button"),
    "two_alarms": (2, "button"),
    # police and operators
    "operator_ack": (3, "operator"),
    "operator_close": (5, "operator"),
    "police_mode": (3, "police"),
    "police_hangup": (2, "police"),
    "police_callback": (2, "police"),
    "unknown_call": (2, "police"),
    # network and server
    "network_loss": (3, "network"),
    "sms_centre_failure": (2, "network"),
    "server_fault": (3, "server"),
    # handset
    "modem_reboot": (2, "handset"),
    "modem_silent": (1, "handset"),
    "power_cut": (2, "handset"),
    "gnss_sky": (2, "handset"),
    "battery": (1, "handset"),
    "idle": (6, "handset"),
    # updates over the air (rare): a new release offered to this handset through a
    # roll-out on the rig's real server (it the canary); or a bad one (fails its
    # self-test, signed with a key the handset does not know, tampered on the server)
    "update_offered": (1.5, "update"),
    "update_bad": (0.5, "update"),
    # the module's answer to a second ATD (refuse or hold): drawn once per handset, first
    "second_call_mode": (0, "handset"),
}

POLICE_MODES = ("answer_hangup", "never_hangup", "never_answer", "busy", "reject")
NETWORK_LOSSES = ("data", "voice", "all")
SERVER_FAULTS = ("down", "slow", "5xx")
OPERATOR_ROUTES = ("rest", "console")
SECOND_CALL_MODES = ("refuse", "hold")
BAD_RELEASES = ("selftest", "other_key", "tampered")


class PlanError(ValueError):
    """A replay file or a plan argument that cannot be used."""


@dataclass(frozen=True)
class Step:
    index: int
    kind: str
    device: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "kind": self.kind, "device": self.device,
                "params": dict(self.params)}

    @classmethod
    def from_json(cls, raw: Any) -> Step:
        if not isinstance(raw, dict):
            raise PlanError(f"a step must be an object, not {raw!r}")
        kind = raw.get("kind")
        if kind not in VOCABULARY:
            raise PlanError(f"step {raw.get('index')}: unknown kind {kind!r}; "
                            f"known: {', '.join(sorted(VOCABULARY))}")
        params = raw.get("params") or {}
        if not isinstance(params, dict):
            raise PlanError(f"step {raw.get('index')}: params must be an object")
        return cls(int(raw.get("index", 0)), kind, str(raw.get("device", "H1")), params)

    def __str__(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"#{self.index} {self.device} {self.kind} {extra}".rstrip()


def handset_names(count: int) -> list[str]:
    return [f"H{i + 1}" for i in range(count)]


def generate(seed: int, steps: int, handsets: int = 1, trigger_hold_ms: int = 600) -> list[Step]:
    """`steps` steps of life for `handsets` handsets, the same for the same arguments."""
    if steps < 1:
        raise PlanError("steps must be at least 1")
    if handsets < 1:
        raise PlanError("handsets must be at least 1")
    rng = random.Random(seed)
    names = handset_names(handsets)
    kinds = list(VOCABULARY)
    weights = [VOCABULARY[k][0] for k in kinds]
    open_alarm = {name: False for name in names}   # the generator's guess only
    hold = trigger_hold_ms / 1000.0
    plan: list[Step] = [Step(i, "second_call_mode", name,
                             {"mode": rng.choice(SECOND_CALL_MODES)})
                        for i, name in enumerate(names)][:steps]
    while len(plan) < steps:
        device = rng.choice(names)
        kind = rng.choices(kinds, weights)[0]
        if kind == "hold_while_open" and not open_alarm[device]:
            kind = "hold"
        if kind in ("operator_close", "operator_ack") and not open_alarm[device]:
            kind = "idle"
        params = _params(rng, kind, hold)
        if kind in ("hold", "hold_during_boot", "two_alarms", "hold_while_open"):
            open_alarm[device] = True
        if kind == "operator_close":
            open_alarm[device] = False
        plan.append(Step(len(plan), kind, device, params))
    return plan


def _params(rng: random.Random, kind: str, hold: float) -> dict[str, Any]:
    r3 = lambda a, b: round(rng.uniform(a, b), 3)   # noqa: E731 - a short local helper
    if kind == "short_press":
        # from a brush to just under the trigger (debounce and timer margins kept)
        return {"hold_s": r3(0.03, max(0.05, hold - 0.2)), "gap_s": r3(0.2, 1.5)}
    if kind in ("hold", "hold_while_open"):
        return {"hold_s": r3(hold + 0.15, hold + 1.5), "gap_s": r3(1.0, 4.0)}
    if kind == "hold_during_boot":
        return {"off_s": r3(0.05, 0.5), "press_after_s": r3(0.0, 0.4),
                "hold_s": r3(hold + 0.15, hold + 1.0), "gap_s": r3(2.0, 4.0)}
    if kind == "two_alarms":
        return {"hold_s": r3(hold + 0.15, hold + 1.0), "close_after_s": r3(1.5, 4.0),
                "route": rng.choice(OPERATOR_ROUTES), "second_after_s": r3(0.5, 4.0),
                "gap_s": r3(2.0, 4.0)}
    if kind == "operator_ack":
        return {"route": rng.choice(OPERATOR_ROUTES), "gap_s": r3(0.3, 2.0)}
    if kind == "operator_close":
        return {"route": rng.choice(OPERATOR_ROUTES), "gap_s": r3(0.5, 3.0)}
    if kind == "police_mode":
        mode = rng.choices(POLICE_MODES, (5, 2, 1, 1, 1))[0]
        params: dict[str, Any] = {"mode": mode, "gap_s": r3(0.1, 0.5)}
        if mode == "answer_hangup":
            params["hangup_after_s"] = r3(1.0, 8.0)
            params["answer_after_s"] = r3(0.2, 2.0)
        elif mode == "never_hangup":
            params["answer_after_s"] = r3(0.2, 2.0)
        else:
            params["for_s"] = r3(1.0, 8.0)   # then the operators answer again
        return params
    if kind == "police_hangup":
        return {"gap_s": r3(0.5, 2.0)}
    if kind == "police_callback":
        return {"hangup_after_s": r3(1.0, 5.0), "gap_s": r3(1.5, 4.0)}
    if kind == "unknown_call":
        return {"withheld": rng.random() < 0.2, "gap_s": r3(0.5, 2.0)}
    if kind == "network_loss":
        return {"what": rng.choice(NETWORK_LOSSES), "duration_s": r3(0.5, 6.0),
                "gap_s": r3(0.2, 2.0)}
    if kind == "sms_centre_failure":
        return {"count": rng.randint(1, 3), "code": rng.choice((500, 331, 38)),
                "gap_s": r3(0.2, 1.0)}
    if kind == "server_fault":
        mode = rng.choice(SERVER_FAULTS)
        return {"mode": mode, "duration_s": r3(0.5, 6.0),
                "delay_s": r3(0.3, 2.5) if mode == "slow" else 0.0,
                "status": rng.choice((500, 502, 503)) if mode == "5xx" else 0,
                "gap_s": r3(0.2, 1.5)}
    if kind == "modem_reboot":
        return {"gap_s": r3(1.0, 3.0)}
    if kind == "modem_silent":
        return {"duration_s": r3(0.5, 3.0), "gap_s": r3(0.5, 2.0)}
    if kind == "power_cut":
        return {"delay_s": r3(0.0, 2.0), "off_s": r3(0.05, 3.0), "gap_s": r3(1.0, 3.0)}
    if kind == "gnss_sky":
        return {"sky": rng.random() < 0.6, "gap_s": r3(0.1, 0.5)}
    if kind == "battery":
        return {"mv": rng.choice((3987, 3987, 3500, 3400)), "gap_s": r3(0.2, 1.0)}
    if kind == "idle":
        return {"gap_s": r3(1.0, 5.0)}
    if kind == "update_offered":
        return {"gap_s": r3(1.0, 4.0)}
    if kind == "update_bad":
        return {"bad": rng.choice(BAD_RELEASES), "gap_s": r3(1.0, 4.0)}
    if kind == "second_call_mode":
        return {"mode": rng.choice(SECOND_CALL_MODES)}
    raise PlanError(f"no parameters for {kind!r}")   # pragma: no cover - VOCABULARY guards it


# -- replay files ---------------------------------------------------------------------------

def replay_document(seed: int, steps: list[Step], handsets: int, timing: str,
                    note: str = "") -> dict[str, Any]:
    return {"format": REPLAY_FORMAT, "seed": seed, "handsets": handsets, "timing": timing,
            "note": note, "steps": [s.to_json() for s in steps]}


def save_replay(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


def load_replay(path: Path) -> dict[str, Any]:
    """A replay file's settings and its steps; PlanError names what is wrong."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError(f"--replay {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise PlanError(f"--replay {path}: not a replay file ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != REPLAY_FORMAT:
        raise PlanError(f"--replay {path}: not a replay file of format {REPLAY_FORMAT}")
    steps = [Step.from_json(s) for s in raw.get("steps") or []]
    if not steps:
        raise PlanError(f"--replay {path}: it has no steps")
    handsets = int(raw.get("handsets") or 1)
    names = set(handset_names(handsets))
    for step in steps:
        if step.device not in names:
            raise PlanError(f"--replay {path}: step {step.index} names handset {step.device}, "
                            f"the file has {handsets}")
    return {"seed": int(raw.get("seed", 0)), "handsets": handsets,
            "timing": raw.get("timing") or "fast", "steps": steps, "note": raw.get("note", "")}


def family_counts(steps: list[Step]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for step in steps:
        counts[step.kind] = counts.get(step.kind, 0) + 1
    return counts
