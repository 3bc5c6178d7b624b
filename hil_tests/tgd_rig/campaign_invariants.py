"""The campaign's invariants, as code: a monitor fed with the rig's events.

`InvariantMonitor.feed(event)` takes every `RigEvent` (presses, device log lines,
network and server events) as it happens; the executor adds what only it knows
(`disturb`: a window in which a channel was down on purpose; `operator_closed`;
`idle_probe`: the modem's state after a close). `check(now)` judges every
obligation whose deadline has passed and returns the new `Violation`s; `finish(now)`
judges the rest at the end of a run. No rig, no sleeping: the tests feed it
synthetic events as well as real ones.

The invariants (docs/hil.md "Campaign"):

- I1 `call`: a hold of at least trigger_hold_ms leads to a voice call to the
  emergency number (the network sees the ATD) within 1 s of the end of the hold, or
  finds a call with the police already in progress.
- I2 `short_press`: a press shorter than trigger_hold_ms never starts an alarm.
- I3 `one_alarm`: a hold opens exactly one alarm (`ALARM resumed=0`) or re-asserts
  the open one (`BUTTON state=held alarm=already_open`); or re-asserts it and, that
  alarm ending before the hold's dial went (`BUTTON alarm=ended_before_dial`), opens
  exactly one new alarm for the same hold (docs/firmware.md "A hold is never lost to
  a close").
- I4 `position` / `sms`: with data up, a position of the new alarm reaches the
  server within 3 s of the end of the hold; the AML SMS goes out within 25 s.
- I5 `lost_or_doubled`: every alarm the handset opened reaches the server exactly
  once (one server alarm per aid, none the handset never opened), an alarm open at a
  power cut is resumed (same aid) after the power comes back.
- I6 `crash`: the firmware never dies by itself: no process exit, no traceback, no
  `ERROR where=main` (an exception, MemoryError included, that reached main.py and
  restarted the app). Errors a channel's guard logged and skipped are counted apart.
- I7 `idle_after_close`: after the operator closes an alarm, the handset ends it, has
  no call up, and its modem is asleep (or was busy within its sleep delay), within
  track_interval_s plus a margin.

- I8 `boot_version`: every boot (`BOOT fw=V`) runs the factory firmware or a release
  this handset was given and switched to (`OTA step=switch ver=V`), never one signed
  with another key or tampered with, and never one that failed its self-test on it.
- I9 `seq`: sequence numbers never go back across a boot (an update's reset, a
  roll-back, a power cut): every seq a boot uses (`HEARTBEAT seq`, `ALARM seq
  resumed=0`) is above every seq used before it (the journal went through).
- I10 `update`: a good release offered to the handset (or taken by it: `OTA
  res=downloading ver=V`) ends in `OTA step=selftest res=ok` (of V or newer) within
  update_within_s of the last thing that held it up (an alarm, a low battery, a power
  cut, data, server or modem down); a roll-out the server paused because the handset
  came back without it is a violation unless a power cut came since the offer;
  a good release is never refused (`bad_hash`, `bad_sig`) and never fails its
  self-test unless the modem or the power went down meanwhile; a trial rolled back by
  the next boot (no self-test line) needs a power cut during the trial.

A window in which the executor took a channel down on purpose (network loss, server
fault, power cut, modem reboot...) excuses the obligations of that channel that
overlap it: they are counted as `excused`, never as passed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from .rig import RigEvent

DIAL_WITHIN_S = 1.0
POSITION_WITHIN_S = 3.0
SMS_WITHIN_S = 25.0
ALARM_LINE_WITHIN_S = 1.5      # the ALARM (or re-assert) line after the end of the hold
RESUME_WITHIN_S = 20.0         # ALARM resumed=1 after the power came back
LONG_MARGIN_S = 0.1            # a hold this much over trigger_hold_ms must trigger
SHORT_MARGIN_S = 0.15          # a press this much under it must not
INF = float("inf")
BOOT_SAMPLE_S = 2.0            # a press this soon after power on may precede the first sample
RECOVERY_S = 1.0               # a disturbance still excuses this long after its end

# Channels a disturbance can take down.
VOICE, DATA, SMS, MODEM, POWER, SERVER = "voice", "data", "sms", "modem", "power", "server"

UPDATE_WITHIN_S = 45.0         # an update taken completes within this of its last hold-up
GOOD, SELFTEST, OTHER_KEY, TAMPERED = "good", "selftest", "other_key", "tampered"

INVARIANTS = ("call", "short_press", "one_alarm", "position", "sms", "lost_or_doubled",
              "crash", "idle_after_close", "boot_version", "seq", "update")


def version_tuple(version: str | None) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in (version or "").split("."))
    except ValueError:
        return ()


@dataclass
class Violation:
    invariant: str
    device: str
    t: float
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"invariant": self.invariant, "device": self.device, "t": round(self.t, 3),
                "message": self.message}

    def __str__(self) -> str:
        return f"[{self.invariant}] {self.device}: {self.message}"


@dataclass
class HandsetConfig:
    msisdn: str
    trigger_hold_s: float
    track_interval_s: float          # as the firmware runs it (scaled)
    emergency_number: str = "17"
    sms_number: str = "+687700100"
    factory_fw: str | None = None    # None: the version of the first BOOT line
    ota_min_bat_mv: int = 3700       # below it an update waits (firmware default)


@dataclass
class _Obligation:
    invariant: str
    device: str
    deadline: float
    window: tuple[float, float]      # the span a disturbance must overlap to excuse it
    channels: tuple[str, ...]        # disturbances of these channels excuse it
    what: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Handset:
    cfg: HandsetConfig
    powered: bool = False
    ready_at: float | None = None         # READY since the last power on
    power_on_at: float | None = None
    press_at: float | None = None
    button_downs: list[float] = field(default_factory=list)   # BUTTON state=down lines
    open_at_press: str | None = None      # the alarm open when the button went down
    police_up_at_press: bool = False
    open_aid: str | None = None           # what the firmware's log says is open
    aids: dict[str, float] = field(default_factory=dict)       # aid -> first ALARM line
    new_alarm_lines: list[tuple[float, str]] = field(default_factory=list)
    reasserts: list[float] = field(default_factory=list)
    handovers: list[float] = field(default_factory=list)  # BUTTON alarm=ended_before_dial
    ended: dict[str, str] = field(default_factory=dict)        # aid -> reason
    ended_at: dict[str, float] = field(default_factory=dict)   # aid -> ALARM_END time
    resumed: list[tuple[float, str]] = field(default_factory=list)
    dials: list[float] = field(default_factory=list)
    police_call_up: bool = False
    callback_up: bool = False
    positions: list[tuple[float, str | None, str | None]] = field(default_factory=list)
    sms_out: list[float] = field(default_factory=list)
    server_alarms: dict[Any, str | None] = field(default_factory=dict)   # alarm id -> aid
    power_cuts: list[float] = field(default_factory=list)
    died: list[tuple[float, str]] = field(default_factory=list)
    # updates
    fw: str | None = None                 # what the current boot runs (BOOT fw=)
    after_reset: bool = False             # the firmware's own reset (exit 75) came last
    armed_at_boot: bool = False           # this boot follows it: a closed contact counts
    switched: dict[str, float] = field(default_factory=dict)   # ver -> OTA step=switch
    trial: tuple[str, float] | None = None  # (ver, BOOT time) of a trial boot not judged yet
    failed: set[str] = field(default_factory=set)               # self-test failed here
    offered: list[tuple[float, str]] = field(default_factory=list)
    battery: list[tuple[float, int]] = field(default_factory=list)   # (t, mV) set by the rig
    seq_floor: int = 0                    # every seq of the boots before this one
    seq_max: int = 0                      # the highest seq of this boot
    seq_checked: bool = True              # this boot's first seq judged


class InvariantMonitor:
    def __init__(self, handsets: dict[str, HandsetConfig], idle_margin_s: float = 3.0,
                 sms_within_s: float = SMS_WITHIN_S, update_within_s: float = UPDATE_WITHIN_S):
        self.sms_within_s = sms_within_s
        self.update_within_s = update_within_s
        self.releases: dict[str, str] = {}    # version -> GOOD, SELFTEST, OTHER_KEY, TAMPERED
        self.rollout_ends: list[tuple[float, str, str]] = []   # (t, version, paused/stopped)
        self._h = {name: _Handset(cfg) for name, cfg in handsets.items()}
        self._by_msisdn = {cfg.msisdn: name for name, cfg in handsets.items()}
        self.idle_margin_s = idle_margin_s
        self._lock = threading.RLock()
        self._pending: list[_Obligation] = []
        self._disturbances: list[tuple[str, set[str], float, float]] = []
        self.violations: list[Violation] = []
        self.passed: dict[str, int] = dict.fromkeys(INVARIANTS, 0)
        self.excused: dict[str, int] = dict.fromkeys(INVARIANTS, 0)
        self.latency_max: dict[str, float] = {}
        self.latency_count: dict[str, int] = {}
        self.counts: dict[str, int] = {}     # events seen: holds, short presses, alarms...
        self.logged_errors: dict[str, int] = {}

    # -- what the executor knows ------------------------------------------------------------

    def disturb(self, device: str | None, channels: set[str] | tuple[str, ...], t0: float,
                t1: float) -> None:
        """Channels down on purpose in [t0, t1] (device None: every handset)."""
        with self._lock:
            for name in ([device] if device else list(self._h)):
                self._disturbances.append((name, set(channels), t0, t1))

    def operator_closed(self, device: str, aid: str, t: float) -> None:
        """The rig closed alarm `aid` as an operator at t: I7's clock starts."""
        cfg = self._h[device].cfg
        deadline = t + cfg.track_interval_s + self.idle_margin_s
        with self._lock:
            self._pending.append(_Obligation(
                "idle_after_close", device, deadline, (t, deadline), (DATA, SERVER, MODEM, POWER),
                f"alarm {aid} closed by the operator at {t:.3f}",
                {"aid": aid, "t": t, "probe": None}))

    def idle_probe(self, device: str, t: float, calls_up: int, modem_asleep: bool,
                   callback_up: bool = False) -> None:
        """The executor's look at the modem (emulator state) while I7 is pending."""
        with self._lock:
            for ob in self._pending:
                if ob.invariant == "idle_after_close" and ob.device == device:
                    # asleep, seen by a probe: a handset that keeps its modem awake (DTR
                    # low, or talking to it all the time) never gets there
                    idle = ob.data["aid"] in self._h[device].ended and (
                        calls_up == 0 or callback_up) and modem_asleep
                    ob.data["probe"] = {"t": t, "calls_up": calls_up, "asleep": modem_asleep,
                                        "ended": ob.data["aid"] in self._h[device].ended}
                    if idle and ob.data.get("idle_at") is None and t <= ob.deadline:
                        ob.data["idle_at"] = t     # (idle after the deadline is too late)

    def interrupt(self, device: str, t: float) -> None:
        """Life goes on before the handset could be idle (she presses again, someone calls
        her): a pending I7 not yet reached cannot be judged (counted as excused)."""
        with self._lock:
            for ob in self._pending:
                if (ob.invariant == "idle_after_close" and ob.device == device
                        and ob.data.get("idle_at") is None and ob.data.get("interrupted_at") is None):
                    ob.data["interrupted_at"] = t

    def idle_wanted(self, device: str) -> float | None:
        """The deadline of a pending I7 of this handset (the executor probes until then)."""
        with self._lock:
            times = [ob.deadline for ob in self._pending
                     if ob.invariant == "idle_after_close" and ob.device == device
                     and ob.data.get("idle_at") is None]
            return max(times) if times else None

    def release_made(self, version: str, kind: str) -> None:
        """The rig made and uploaded release `version`: GOOD, or a bad one (SELFTEST: it
        fails its self-test; OTHER_KEY: signed with a key the handsets do not know;
        TAMPERED: its bundle changed on the server after the upload)."""
        with self._lock:
            self.releases[version] = kind
            self._count(f"release_{kind}")

    def offered(self, device: str, version: str, t: float) -> None:
        """A roll-out of `version` started with this handset as its canary: a good release
        must be running on it within update_within_s (the offer comes with the next
        heartbeat's answer) of the last thing that held it up."""
        with self._lock:
            self._h[device].offered.append((t, version))
            if self.releases.get(version) != GOOD:
                self._count("update_bad_offered")
                return
            self._count("update_offered")
            self._expect_update(device, version, t, "offered")

    def _expect_update(self, device: str, version: str, t: float, how: str) -> None:
        if any(ob.invariant == "update" and ob.device == device and ob.data["ver"] == version
               for ob in self._pending):
            return
        until = t + self.update_within_s
        self._pending.append(_Obligation(
            "update", device, until, (t, until), (), f"release {version} {how} at {t:.3f}",
            {"ver": version, "t": t, "until": until}))

    def battery(self, device: str, mv: int, t: float) -> None:
        """The rig set the battery (an update waits below ota_min_bat_mv)."""
        with self._lock:
            self._h[device].battery.append((t, mv))

    def rollout_ended(self, version: str, phase: str, reason: str, t: float) -> None:
        """The server's roll-out of `version` paused by itself (or was stopped): nobody is
        offered it any more, so an update of it not done yet cannot be judged."""
        with self._lock:
            self.rollout_ends.append((t, version, phase))
            self._count(f"rollout_{phase}")
            for ob in self._pending:
                if ob.invariant == "update" and ob.data["ver"] == version:
                    ob.data["rollout_ended"] = (t, f"the roll-out {phase} at {t:.3f}: {reason}")

    def updates_pending(self) -> list[str]:
        """Handsets with an update taken and not judged yet."""
        with self._lock:
            return sorted({ob.device for ob in self._pending if ob.invariant == "update"})

    def open_aid(self, device: str) -> str | None:
        with self._lock:
            return self._h[device].open_aid

    # -- events -----------------------------------------------------------------------------

    def feed(self, ev: RigEvent) -> None:
        with self._lock:
            name = ev.device if ev.device in self._h else self._by_msisdn.get(
                ev.data.get("modem") or ev.data.get("caller") or "")
            if name is None:
                return
            h = self._h[name]
            if ev.source == "rig":
                self._rig_event(name, h, ev)
            elif ev.source == "device" and ev.kind == "log":
                self._log_line(name, h, ev)
            elif ev.source == "network":
                self._network_event(name, h, ev)
            elif ev.source == "server":
                self._server_event(name, h, ev)

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def _rig_event(self, name: str, h: _Handset, ev: RigEvent) -> None:
        if ev.kind == "press":
            self.interrupt(name, ev.t)
            for ob in self._pending:     # a short press's window ends at the next press
                if ob.device == name and ob.invariant == "short_press" and ob.data["t1"] > ev.t:
                    ob.data["t1"] = ev.t
            h.press_at = ev.t
            h.open_at_press = h.open_aid
            h.police_up_at_press = h.police_call_up or h.callback_up
        elif ev.kind == "release" and h.press_at is not None:
            self._released(name, h, h.press_at, ev.t)
            h.press_at = None
        elif ev.kind == "reset":
            h.after_reset = True     # the firmware's own reset: always an update's (rst=1)
        elif ev.kind == "power_cut":
            h.powered = False
            h.ready_at = None
            h.after_reset = False
            h.power_cuts.append(ev.t)
            h.police_call_up = h.callback_up = False   # the modem lost power: calls dropped
            self._count("power_cut")
            if h.open_aid is not None:
                # judged when it resumes; by RESUME_WITHIN_S after the power comes back
                self._pending = [ob for ob in self._pending
                                 if not (ob.device == name and ob.data.get("kind") == "resume")]
                self._pending.append(_Obligation(
                    "lost_or_doubled", name, INF, (ev.t, INF), (),
                    f"alarm {h.open_aid} open at the power cut at {ev.t:.3f} is resumed",
                    {"kind": "resume", "aid": h.open_aid, "t": ev.t}))
            if h.press_at is not None:      # the hand was still on the button
                h.press_at = None
        elif ev.kind == "power_on":
            h.powered = True
            h.power_on_at = ev.t
            h.ready_at = None
            h.armed_at_boot, h.after_reset = h.after_reset, False
            for ob in self._pending:
                if ob.device == name and ob.data.get("kind") == "resume" and ob.deadline == INF:
                    ob.deadline = ev.t + RESUME_WITHIN_S
                    ob.window = (ob.window[0], ob.deadline)

    def _released(self, name: str, h: _Handset, t_press: float, t_release: float) -> None:
        held = t_release - t_press
        trig = h.cfg.trigger_hold_s
        if held <= trig - SHORT_MARGIN_S:
            self._count("short_press")
            end = t_release + 1.0
            self._pending.append(_Obligation(
                "short_press", name, end, (t_press, end), (), f"press of {held:.3f} s at "
                f"{t_press:.3f}", {"t0": t_press, "t1": end}))
            return
        if held < trig + LONG_MARGIN_S:
            self._count("ambiguous_press")
            return
        self._count("hold")
        t_end = t_press + trig
        downs = [t for t in h.button_downs if t_press - 0.05 <= t <= t_release]
        seen_down = bool(downs)
        if (not seen_down and not h.armed_at_boot and h.power_on_at is not None
                and t_press - h.power_on_at < BOOT_SAMPLE_S):
            # Pressed before the firmware first read the button: a contact closed at boot is
            # never armed (docs/firmware.md "Button": a stuck button must not alarm at every
            # boot). The firmware's own log proves it: no BUTTON state=down for this press.
            self._count("hold_closed_at_boot")
            self.excused["call"] += 1
            self.excused["one_alarm"] += 1
            return
        booting = h.ready_at is None or h.ready_at > t_press
        if booting and h.armed_at_boot and downs and downs[0] > t_press + 0.1:
            # Begun during an update's reboot: the firmware times the hold from its first
            # sample of the button (its BUTTON state=down, docs/firmware.md "The alarm
            # always wins"): judged from there, never excused.
            if t_release - downs[0] < trig + LONG_MARGIN_S:
                self._count("hold_mostly_before_the_boot")
                self.excused["call"] += 1
                self.excused["one_alarm"] += 1
                return
            t_end = max(t_end, downs[0] + trig)
            self._count("hold_through_an_update_reset")
        base = {"t_press": t_press, "t_end": t_end, "held": held, "booting": booting,
                "open_before": h.open_at_press, "police_up": h.police_up_at_press}
        if booting and h.ready_at is not None:
            base["ready_at"] = h.ready_at          # READY came during the hold
        what = f"hold of {held:.3f} s pressed at {t_press:.3f} (end of hold {t_end:.3f})"
        # I1: the deadline moves to READY when the hold came during boot (see _log_line)
        start = max(t_end, base.get("ready_at") or t_end)
        self._pending.append(_Obligation("call", name, start + DIAL_WITHIN_S,
                                         (t_press - 0.5, start + DIAL_WITHIN_S),
                                         (VOICE, MODEM, POWER), what, dict(base)))
        self._pending.append(_Obligation("one_alarm", name, start + ALARM_LINE_WITHIN_S,
                                         (t_press, start + ALARM_LINE_WITHIN_S), (POWER,), what,
                                         dict(base)))

    def _log_line(self, name: str, h: _Handset, ev: RigEvent) -> None:
        line = ev.data["line"]
        raw = line.raw
        if raw.startswith("--- rig: firmware ended"):
            h.died.append((ev.t, raw))
            self._violate("crash", name, ev.t, f"the firmware died by itself: {raw[8:]}")
            return
        if "Traceback" in raw and not raw.startswith("---"):
            h.died.append((ev.t, raw))
            self._violate("crash", name, ev.t, f"unhandled exception: {raw}")
            return
        event = line.event
        if event == "BOOT":
            self._boot_line(name, h, ev.t, line.get("fw"))
        elif event == "OTA":
            self._ota_line(name, h, ev.t, line)
        elif event == "HEARTBEAT":
            self._seq_used(name, h, ev.t, line.get("seq"), "HEARTBEAT")
        if event == "ALARM" and line.get("resumed") != "1":
            self._seq_used(name, h, ev.t, line.get("seq"), f"ALARM {line.get('aid')}")
        if event == "READY":
            if h.ready_at is None:
                h.ready_at = ev.t
                self._booted(name, ev.t)
        elif event == "ALARM":
            aid = line.get("aid") or "?"
            h.aids.setdefault(aid, ev.t)
            h.open_aid = aid
            if line.get("resumed") == "1":
                h.resumed.append((ev.t, aid))
                self._resumed(name, aid, ev.t)
            else:
                h.new_alarm_lines.append((ev.t, aid))
                self._count("alarm_opened")
        elif event == "ALARM_END":
            aid = line.get("aid") or "?"
            h.ended[aid] = line.get("reason") or "?"
            h.ended_at[aid] = ev.t
            if h.open_aid == aid:
                h.open_aid = None
            self._count(f"alarm_end_{line.get('reason')}")
        elif event == "BUTTON" and line.get("state") == "down":
            h.button_downs.append(ev.t)
        elif event == "BUTTON" and line.get("alarm") == "already_open":
            h.reasserts.append(ev.t)
            self._count("reassert")
        elif event == "BUTTON" and line.get("alarm") == "ended_before_dial":
            h.handovers.append(ev.t)
            self._count("hold_handed_to_a_new_alarm")
        elif event == "ERROR":
            what = (line.get("what") or "?").split(":")[0]
            key = f"{line.get('where')}:{what}"
            self.logged_errors[key] = self.logged_errors.get(key, 0) + 1
            if line.get("where") == "main":
                # main.py caught it (a MemoryError or any exception): the whole app died
                h.died.append((ev.t, raw))
                self._violate("crash", name, ev.t, f"the app died and restarted: {raw}")
            # A MemoryError a channel's guard caught and logged (the channel starts again)
            # is counted in logged_errors, not a death: the figures show how many.

    # -- updates ------------------------------------------------------------------------

    def _boot_line(self, name: str, h: _Handset, t: float, fw: str | None) -> None:
        """I8 on every boot; I9's floor moves up; a trial that did not reach its self-test."""
        h.seq_floor = max(h.seq_floor, h.seq_max)
        h.seq_max, h.seq_checked = 0, False
        if h.cfg.factory_fw is None:
            h.cfg.factory_fw = fw
        if h.trial is not None:
            ver, t_boot = h.trial
            h.trial = None
            if fw != ver:     # the boot after a trial with no self-test line: rolled back
                self._count("update_rolled_back")
                if self.releases.get(ver) == GOOD:
                    self._trial_failed(name, h, ver, t_boot, t, "rolled back by the next "
                                       "boot (no self-test line)", (POWER,))
                else:
                    self._drop_update(name, ver)
        h.fw = fw
        self._count(f"boot_fw_{fw}")
        kind = self.releases.get(fw or "")
        if fw == h.cfg.factory_fw:
            why = None
        elif fw in h.failed:
            why = f"it booted {fw}, which failed its self-test on it before"
        elif kind in (OTHER_KEY, TAMPERED):
            why = f"it booted {fw}, a release {'signed with another key' if kind == OTHER_KEY else 'tampered with'}"
        elif kind is None:
            why = f"it booted {fw}, neither the factory firmware {h.cfg.factory_fw} nor a release it was given"
        elif fw not in h.switched:
            why = f"it booted {fw} without having switched to it (no OTA step=switch ver={fw})"
        else:
            why = None
        if why is not None:
            self._violate("boot_version", name, t, why)
            return
        self.passed["boot_version"] += 1
        if fw != h.cfg.factory_fw and h.switched[fw] >= 0:
            h.trial = (fw, t)      # switched to, not confirmed yet: its trial boot

    def _seq_used(self, name: str, h: _Handset, t: float, raw: str | None, what: str) -> None:
        try:
            seq = int(raw or "")
        except ValueError:
            return
        if seq <= h.seq_floor:
            self._violate("seq", name, t, f"{what} used seq {seq}, not above {h.seq_floor} "
                          "used before the last boot (the journal did not go through)")
        elif not h.seq_checked:
            self.passed["seq"] += 1
        h.seq_checked = True
        h.seq_max = max(h.seq_max, seq)

    def _ota_line(self, name: str, h: _Handset, t: float, line) -> None:
        res, step, ver = line.get("res"), line.get("step"), line.get("ver")
        if step == "switch" and ver:
            h.switched[ver] = t
            self._count("update_switch")
        elif step == "selftest" and res == "ok":
            self._count("update_completed")
            if ver in h.switched:
                h.switched[ver] = -1.0     # confirmed: its later boots are no trial
            h.trial = None
            for ob in list(self._pending):
                if (ob.invariant == "update" and ob.device == name
                        and version_tuple(ob.data["ver"]) <= version_tuple(ver)):
                    self._pending.remove(ob)
                    self.passed["update"] += 1
                    self._latency("update_s", t - ob.data["t"])
        elif step == "selftest" and res == "selftest_failed":
            ver = h.fw or "?"
            h.failed.add(ver)
            h.trial = None
            self._count("update_selftest_failed")
            if self.releases.get(ver) == GOOD:
                self._trial_failed(name, h, ver, h.switched.get(ver, t), t,
                                   f"failed its self-test ({line.get('why')})", (MODEM, POWER))
            else:
                self._drop_update(name, ver)
        elif res == "downloading" and ver:
            self._count("update_taken")
            if self.releases.get(ver) == GOOD:   # (offered as a canary, or in a later stage)
                self._expect_update(name, ver, t, "taken")
        elif res in ("bad_sig", "bad_hash", "refused") and line.get("why") != "not_newer":
            self._count(f"update_refused_{res}")
            if self.releases.get(ver or "") == GOOD:
                self._drop_update(name, ver)
                self._violate("update", name, t, f"a good release {ver} refused: {res} "
                              f"({line.get('why')})")
            else:
                self._drop_update(name, ver)

    def _drop_update(self, name: str, ver: str | None) -> None:
        self._pending = [ob for ob in self._pending if not (
            ob.invariant == "update" and ob.device == name and ob.data["ver"] == ver)]

    def _trial_failed(self, name: str, h: _Handset, ver: str, t0: float, t1: float,
                      what: str, excusing: tuple[str, ...]) -> None:
        """A good release's trial ended on the old firmware: a power cut (or, for a failed
        self-test, the modem down) since its switch excuses it; else a violation."""
        self._drop_update(name, ver)
        ob = _Obligation("update", name, t1, (t0, t1), excusing, f"release {ver}: {what}")
        excuse = self._excused(ob) or next(
            (f"power cut at {c:.3f}" for c in h.power_cuts if t0 <= c <= t1), None)
        if excuse is not None:
            self.excused["update"] += 1
        else:
            self._violate("update", name, t1, f"release {ver} (good): {what}, with nothing "
                          "disturbing the handset")

    def _update_held_up(self, ob: _Obligation, h: _Handset,
                        window: tuple[float, float] | None = None) -> float | None:
        """The end of the last thing that held the update up within its window (None:
        nothing did); INF while one still does."""
        t0, t1 = window or ob.window
        ends: list[float] = []
        for name, channels, d0, d1 in self._disturbances:
            if name == ob.device and channels & {DATA, SERVER, MODEM, POWER} and d0 <= t1 \
                    and d1 + RECOVERY_S >= t0:
                ends.append(d1 + RECOVERY_S)
        ends += [c for c in h.power_cuts if t0 <= c <= t1]
        ends += [t for t in list(h.ended_at.values()) + [t for t, _ in h.new_alarm_lines]
                 + [t for t, _ in h.resumed] if t0 <= t <= t1]
        if h.open_aid is not None:
            ends.append(INF)
        low = [(t, mv) for t, mv in h.battery if t <= t1]
        if low and low[-1][1] < h.cfg.ota_min_bat_mv:
            ends.append(INF)
        ends += [t for t, mv in h.battery if t0 <= t <= t1]
        later = [e for e in ends if e > t0]
        return max(later) if later else None

    def _judge_update(self, ob: _Obligation, h: _Handset):
        d = ob.data
        if d.get("rollout_ended"):
            # The server paused the roll-out (its canary came back without it, or failed):
            # nobody is offered it any more. A handset that keeps the offer reports it in
            # progress (downloading, deferred: an alarm, a low battery) and the roll-out
            # waits; only a power cut (or a death) between the offer and its check can
            # make it come back without it. Else the handset let the offer go by itself.
            t_end, why = d["rollout_ended"]
            if any(d["t"] <= c <= t_end for c in h.power_cuts) or any(
                    d["t"] <= t <= t_end for t, _ in h.died):
                return None
            return f"not taken: {why}, with no power cut since the offer"
        if ob.deadline < d["until"]:
            return None     # the run ended first
        held = self._update_held_up(ob, h)
        if held == INF:      # still held up (an alarm open, the battery low): look again later
            ob.deadline = d["until"] = ob.deadline + self.update_within_s
            ob.window = (ob.window[0], ob.deadline)
            self._pending.append(ob)
            return "later"
        if held is not None and held > d.get("held_until", d["t"]):
            # held up: a new window from the end of it
            d["held_until"] = held
            ob.window = (held, held + self.update_within_s)
            ob.deadline = d["until"] = held + self.update_within_s
            self._pending.append(ob)
            return "later"
        return (f"not completed within {self.update_within_s:.0f} s "
                f"(no OTA step=selftest res=ok ver={d['ver']} or newer)")

    def _resumed(self, name: str, aid: str, t: float) -> None:
        """An alarm resumed after a power cut: the one that was open, or a violation now."""
        for ob in list(self._pending):
            if ob.device == name and ob.data.get("kind") == "resume":
                self._pending.remove(ob)
                if aid == ob.data["aid"]:
                    self.passed["lost_or_doubled"] += 1
                    on = self._h[name].power_on_at
                    if on is not None and on >= ob.data["t"]:
                        self._latency("resume_after_power_on_s", max(0.0, t - on))
                else:
                    self._violate("lost_or_doubled", name, t,
                                  f"alarm {ob.data['aid']} open at the power cut came back as "
                                  f"another alarm {aid}")

    def _booted(self, name: str, t_ready: float) -> None:
        """READY after a boot: holds made during the boot get their deadlines from now."""
        for ob in self._pending:
            if ob.device == name and ob.data.get("booting") and ob.invariant in ("call", "one_alarm"):
                extra = DIAL_WITHIN_S if ob.invariant == "call" else ALARM_LINE_WITHIN_S
                ob.deadline = max(ob.deadline, t_ready + extra)
                ob.window = (ob.window[0], ob.deadline)
                ob.data["ready_at"] = t_ready

    def _network_event(self, name: str, h: _Handset, ev: RigEvent) -> None:
        k = ev.kind
        number = ev.data.get("number")
        if k == "dial" and number == h.cfg.emergency_number:
            h.dials.append(ev.t)
            h.police_call_up = True
            self._count("dial")
        elif k in ("call_ended", "call_failed") and number == h.cfg.emergency_number:
            h.police_call_up = False
        elif k == "call_answered" and number == h.cfg.emergency_number:
            self._count("police_answered")
        elif k == "callback_answered":
            h.callback_up = True
            self._count("callback_answered")
        elif k in ("callback_ended", "callback_failed"):
            h.callback_up = False
        elif k == "modem_off":
            h.police_call_up = h.callback_up = False
        elif k == "sms_submitted" and ev.data.get("to") == h.cfg.sms_number:
            h.sms_out.append(ev.t)
            self._count("sms_submitted")

    def _server_event(self, name: str, h: _Handset, ev: RigEvent) -> None:
        if ev.kind in ("server_alarm", "alarm_updated"):
            if ev.kind == "server_alarm":
                self._count("server_alarm")
            self._server_alarm(name, h, ev.data.get("alarm_id"), ev.data.get("aid"), ev.t)
        elif ev.kind == "server_position":
            h.positions.append((ev.t, ev.data.get("aid"), ev.data.get("channel")))
            self._count("server_position")

    def _server_alarm(self, name: str, h: _Handset, alarm_id: Any, aid: str | None,
                      t: float) -> None:
        """One server alarm (id) and, once known, its aid: doubled or phantom alarms."""
        if alarm_id is None:
            return
        known = h.server_alarms.get(alarm_id)
        if aid is None or known == aid:
            h.server_alarms.setdefault(alarm_id, None)
            return
        h.server_alarms[alarm_id] = aid
        others = [i for i, a in h.server_alarms.items() if a == aid and i != alarm_id]
        if others:
            self._violate("lost_or_doubled", name, t,
                          f"alarm {aid} is twice at the server (alarms {others[0]} and {alarm_id})")
        elif aid not in h.aids:
            self._violate("lost_or_doubled", name, t,
                          f"alarm {alarm_id} ({aid}) at the server was never opened by the handset")

    def server_snapshot(self, name: str, alarms: list[dict[str, Any]], t: float) -> None:
        """The server's alarms of this handset as its REST API lists them (before finish)."""
        with self._lock:
            h = self._h[name]
            for alarm in alarms:
                self._server_alarm(name, h, alarm.get("id"), alarm.get("aid"), t)

    # -- judging ----------------------------------------------------------------------------

    def _violate(self, invariant: str, device: str, t: float, message: str) -> None:
        self.violations.append(Violation(invariant, device, t, message))

    def _latency(self, key: str, value: float) -> None:
        self.latency_count[key] = self.latency_count.get(key, 0) + 1
        if value > self.latency_max.get(key, float("-inf")):
            self.latency_max[key] = value

    def _excused(self, ob: _Obligation) -> str | None:
        t0, t1 = ob.window
        for name, channels, d0, d1 in self._disturbances:
            if name == ob.device and channels & set(ob.channels) and d0 <= t1 and d1 + RECOVERY_S >= t0:
                return f"{'/'.join(sorted(channels))} down {d0:.3f}..{d1:.3f}"
        h = self._h[ob.device]
        if POWER in ob.channels or ob.invariant in ("call", "one_alarm", "position", "sms"):
            for t_cut in h.power_cuts:
                if t0 <= t_cut <= t1:
                    return f"power cut at {t_cut:.3f}"
        return None

    def check(self, now: float) -> list[Violation]:
        """Judge every obligation whose deadline has passed; the new violations."""
        with self._lock:
            before = len(self.violations)
            while True:   # judging may add obligations already due (a new alarm's position)
                due = [ob for ob in self._pending if ob.deadline <= now]
                if not due:
                    return self.violations[before:]
                self._pending = [ob for ob in self._pending if ob.deadline > now]
                for ob in sorted(due, key=lambda o: o.deadline):
                    self._judge(ob)

    def finish(self, now: float) -> list[Violation]:
        """The end of a run (after the rig let every fault end): judge everything left."""
        with self._lock:
            before = len(self.violations)
            for ob in self._pending:
                ob.deadline = min(ob.deadline, now)
            self.check(now)
            for name, h in self._h.items():
                at_server = set(h.server_alarms.values())
                for aid in h.aids:
                    if aid not in at_server:
                        self._violate("lost_or_doubled", name, now,
                                      f"alarm {aid} opened by the handset never reached the server")
                    else:
                        self.passed["lost_or_doubled"] += 1
                if not h.died:
                    self.passed["crash"] += 1
            return self.violations[before:]

    def _judge(self, ob: _Obligation) -> None:
        h = self._h[ob.device]
        verdict = getattr(self, "_judge_" + ob.invariant)(ob, h)
        if verdict == "later":              # looked at again at its new deadline
            return
        if verdict is True:
            self.passed[ob.invariant] += 1
            return
        if verdict is None:                 # could not be judged: counted apart
            self.excused[ob.invariant] += 1
            return
        excuse = self._excused(ob)
        if excuse is not None:
            self.excused[ob.invariant] += 1
            return
        self._violate(ob.invariant, ob.device, ob.deadline, f"{ob.what}: {verdict}")

    def _judge_call(self, ob: _Obligation, h: _Handset):
        d = ob.data
        if d["police_up"]:
            self._latency("dial_s", 0.0)
            return True
        start = d["t_end"] if not d.get("ready_at") else max(d["t_end"], d["ready_at"])
        dials = [t for t in h.dials if d["t_press"] <= t <= ob.deadline]
        if dials:
            self._latency("dial_s", max(0.0, dials[0] - start))
            return True
        late = [t for t in h.dials if t > ob.deadline]
        return (f"no call to {h.cfg.emergency_number} within {DIAL_WITHIN_S} s of "
                f"{'READY' if d.get('ready_at') else 'the end of the hold'}"
                + (f" (a dial came {late[0] - start:.3f} s after)" if late else ""))

    def _judge_one_alarm(self, ob: _Obligation, h: _Handset):
        d = ob.data
        t0, t1 = d["t_press"], ob.deadline
        new = [(t, aid) for t, aid in h.new_alarm_lines if t0 <= t <= t1]
        again = [t for t in h.reasserts if t0 <= t <= t1]
        ended_first = h.ended_at.get(d["open_before"], float("inf")) <= (new[0][0] if new else 0)
        if new and d["open_before"] is not None and not again and not ended_first:
            return (f"a second alarm {new[0][1]} while alarm {d['open_before']} was open "
                    "(a hold during an alarm must re-assert it)")
        if len(new) + len(again) == 1:
            if new:
                t_line, aid = new[0]
                self._obligations_of_new_alarm(ob, h, aid)
            return True
        if len(new) == 1 and len(again) == 1 and any(
                again[0] <= t <= new[0][0] for t in h.handovers):
            # the re-asserted alarm ended before the hold's dial went: the hold opened a
            # new alarm, which owes what any new alarm owes
            self._obligations_of_new_alarm(ob, h, new[0][1])
            return True
        if not new and not again:
            return "neither a new alarm nor the open one re-asserted"
        return (f"{len(new)} new alarm(s) {[a for _, a in new]} and {len(again)} re-assert(s) "
                "for one hold")

    def _obligations_of_new_alarm(self, ob: _Obligation, h: _Handset, aid: str) -> None:
        d = ob.data
        start = d["t_end"] if not d.get("ready_at") else max(d["t_end"], d["ready_at"])
        self._pending.append(_Obligation(
            "position", ob.device, start + POSITION_WITHIN_S, (d["t_press"], start + POSITION_WITHIN_S),
            (DATA, SERVER, MODEM, POWER), f"alarm {aid} ({ob.what})",
            {"aid": aid, "start": start, "t_press": d["t_press"]}))
        self._pending.append(_Obligation(
            "sms", ob.device, start + self.sms_within_s, (d["t_press"], start + self.sms_within_s),
            (VOICE, SMS, MODEM, POWER), f"alarm {aid} ({ob.what})",
            {"aid": aid, "start": start, "t_press": d["t_press"]}))

    def _judge_position(self, ob: _Obligation, h: _Handset):
        d = ob.data
        # over data (HTTP or MQTT): the AML SMS has its own invariant
        got = [t for t, aid, channel in h.positions if d["t_press"] <= t <= ob.deadline
               and aid in (d["aid"], None) and channel != "sms"]
        if got:
            self._latency("position_s", max(0.0, got[0] - d["start"]))
            return True
        return f"no position at the server over data within {POSITION_WITHIN_S} s"

    def _judge_sms(self, ob: _Obligation, h: _Handset):
        d = ob.data
        got = [t for t in h.sms_out if d["t_press"] <= t <= ob.deadline]
        if got:
            self._latency("sms_submitted_s", max(0.0, got[0] - d["start"]))
            return True
        return f"no AML SMS submitted within {self.sms_within_s} s"

    def _judge_short_press(self, ob: _Obligation, h: _Handset):
        t0, t1 = ob.data["t0"], ob.data["t1"]
        new = [aid for t, aid in h.new_alarm_lines if t0 <= t <= t1]
        if new:
            return f"it started alarm {new[0]}"
        return True

    def _judge_lost_or_doubled(self, ob: _Obligation, h: _Handset):
        d = ob.data
        if d.get("kind") == "resume":
            if d["aid"] in h.ended:
                return True
            return f"alarm {d['aid']} not resumed within {RESUME_WITHIN_S} s of the power coming back"
        return True

    def _judge_idle_after_close(self, ob: _Obligation, h: _Handset):
        d = ob.data
        if d.get("idle_at") is not None:
            self._latency("idle_after_close_s", d["idle_at"] - d["t"])
            return True
        if d.get("interrupted_at") is not None:
            return None      # she pressed again (or a call came) before it could be idle
        probe = d.get("probe")
        if probe is None:
            return "never probed (the executor did not look at the modem)"
        missing = []
        if not probe["ended"]:
            missing.append(f"the handset did not end alarm {d['aid']}")
        if probe["calls_up"]:
            missing.append(f"{probe['calls_up']} call(s) still up")
        if not probe["asleep"]:
            missing.append("the modem is not asleep")
        return (f"not idle within track_interval_s + {self.idle_margin_s} s: "
                + ", ".join(missing or ["?"]))

    # -- figures ----------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {"violations": [v.to_json() for v in self.violations],
                    "passed": dict(self.passed), "excused": dict(self.excused),
                    "events": dict(sorted(self.counts.items())),
                    "slowest_s": {k: round(v, 3) for k, v in sorted(self.latency_max.items())},
                    "latency_samples": dict(sorted(self.latency_count.items())),
                    "logged_errors": dict(sorted(self.logged_errors.items()))}
