"""Scenario files: what to press, where the handset is, what goes wrong, what must happen.

A scenario is a TOML file (format in docs/hil.md). `load_scenario(path)` reads and
validates it into plain dataclasses; every mistake is a `ScenarioError` naming the
file and the key, and nothing is run.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ScenarioError

CHANNELS = ("dial", "call_answered", "server_alarm", "position", "gnss", "sms_delivered")
TIMINGS = ("fast", "realistic")
_TOP_KEYS = {"name", "description", "timing", "fast_scale", "observe_s", "cells", "handset",
             "config", "police", "press", "fault", "expect"}
_HANDSET_KEYS = {"device_id", "indoor", "battery_mv", "track", "msisdn"}
_EXPECT_KEYS = {"alarms", "within_s", "absent", "fix_method", "fix_error_max_m", "log_sequence",
                "log_absent", "calls_answered_min", "sms_delivered_min"}


@dataclass(frozen=True)
class Press:
    at_s: float      # seconds after the handset is READY
    hold_s: float    # how long the button is held


@dataclass(frozen=True)
class Fault:
    at_s: float      # seconds after the handset is READY
    name: str        # an emulator fault (hil_tests/tgd_rig/emulator docstring)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrackSpec:
    lat: float | None = None
    lon: float | None = None
    nmea: Path | None = None   # resolved against the scenario's folder

    @property
    def is_fixed(self) -> bool:
        return self.nmea is None


@dataclass(frozen=True)
class Expectations:
    alarms: int | None = None                       # alarms at the server for the handset
    within_s: dict[str, float] = field(default_factory=dict)  # channel -> max s from end of hold
    absent: tuple[str, ...] = ()                    # channels that must not happen
    fix_method: str | None = None                   # method of the best position at the server
    fix_error_max_m: float | None = None            # best position's distance from the truth
    log_sequence: tuple[str, ...] = ()              # device events that must appear, in this order
    log_absent: tuple[str, ...] = ()                # device events that must never appear
    calls_answered_min: int | None = None
    sms_delivered_min: int | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path | None
    description: str = ""
    timing: str = "fast"
    fast_scale: float | None = None
    observe_s: float = 30.0      # how long to watch after the last press at most
    cells: Path | None = None    # OpenCelliD-layout CSV for the network and the server (default: NC)
    device_id: str = "NC0001"
    msisdn: str = "+687751001"
    indoor: bool = False
    battery_mv: int = 3987
    track: TrackSpec = field(default_factory=lambda: TrackSpec(lat=-22.2758, lon=166.4580))
    config: dict[str, Any] = field(default_factory=dict)
    police_answer_after_s: float = 3.0
    presses: tuple[Press, ...] = ()
    faults: tuple[Fault, ...] = ()
    expect: Expectations = field(default_factory=Expectations)

    def trigger_hold_s(self) -> float:
        return float(self.config.get("trigger_hold_ms", 2000)) / 1000.0

    def alarm_presses(self) -> list[Press]:
        """The presses long enough to trigger an alarm."""
        hold = self.trigger_hold_s()
        return [p for p in self.presses if p.hold_s >= hold]


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    return parse_scenario(data, path)


def parse_scenario(data: dict[str, Any], path: Path | None = None) -> Scenario:
    where = str(path) if path else "<scenario>"
    _no_unknown(data, _TOP_KEYS, where, "")
    name = _typed(data, "name", str, where, default=path.stem if path else None, required=True)
    timing = _typed(data, "timing", str, where, default="fast")
    if timing not in TIMINGS:
        raise ScenarioError(f"{where}: timing must be one of {TIMINGS}, not {timing!r}")
    fast_scale = _number(data, "fast_scale", where, default=None, minimum=0.001, maximum=1.0)
    observe_s = _number(data, "observe_s", where, default=30.0, minimum=0.1, maximum=3600)
    cells = _typed(data, "cells", str, where, default=None)
    cells_path = None
    if cells is not None:
        cells_path = Path(cells)
        if not cells_path.is_absolute() and path is not None:
            cells_path = path.parent / cells_path

    handset = _table(data, "handset", where)
    _no_unknown(handset, _HANDSET_KEYS, where, "handset.")
    track = _track(handset.get("track"), path, where)

    config = _table(data, "config", where)
    _check_config_keys(config, where)
    police = _table(data, "police", where)
    _no_unknown(police, {"answer_after_s"}, where, "police.")

    presses = tuple(_press(p, f"{where}: press[{i}]") for i, p in enumerate(_list(data, "press", where)))
    faults = tuple(_fault(f, f"{where}: fault[{i}]") for i, f in enumerate(_list(data, "fault", where)))

    scenario = Scenario(
        name=name, path=path,
        description=_typed(data, "description", str, where, default=""),
        timing=timing, fast_scale=fast_scale, observe_s=observe_s, cells=cells_path,
        device_id=_typed(handset, "device_id", str, where, default="NC0001", prefix="handset."),
        msisdn=_typed(handset, "msisdn", str, where, default="+687751001", prefix="handset."),
        indoor=_typed(handset, "indoor", bool, where, default=False, prefix="handset."),
        battery_mv=int(_number(handset, "battery_mv", where, default=3987, minimum=2500,
                               maximum=4500, prefix="handset.")),
        track=track, config=dict(config),
        police_answer_after_s=_number(police, "answer_after_s", where, default=3.0, minimum=0,
                                      maximum=600, prefix="police."),
        presses=presses, faults=faults,
        expect=_expectations(_table(data, "expect", where), where),
    )
    if not presses and not faults:
        raise ScenarioError(f"{where}: no steps: add a [[press]] (or a [[fault]]) for the "
                            "scenario to do something; a scenario that does nothing cannot pass")
    return scenario


# -- pieces --------------------------------------------------------------------------------


def _check_config_keys(config: dict[str, Any], where: str) -> None:
    """Only the settings a technician may set (tgd_flash's list): a typo fails here."""
    from tgd_flash.handset_config import TUNABLE

    unknown = sorted(set(config) - set(TUNABLE))
    if unknown:
        raise ScenarioError(f"{where}: [config] unknown setting(s) {', '.join(unknown)} "
                            f"(known: {', '.join(TUNABLE)})")


def _press(item: Any, where: str) -> Press:
    if not isinstance(item, dict):
        raise ScenarioError(f"{where}: must be a table with at_s and hold_s")
    _no_unknown(item, {"at_s", "hold_s"}, where, "")
    return Press(at_s=_number(item, "at_s", where, required=True, minimum=0, maximum=3600),
                 hold_s=_number(item, "hold_s", where, required=True, minimum=0, maximum=600))


def _fault(item: Any, where: str) -> Fault:
    if not isinstance(item, dict):
        raise ScenarioError(f"{where}: must be a table with at_s and name")
    _no_unknown(item, {"at_s", "name", "params"}, where, "")
    params = item.get("params", {})
    if not isinstance(params, dict):
        raise ScenarioError(f"{where}: params must be a table")
    name = _typed(item, "name", str, where, required=True)
    from .emulator.errors import UnknownFault
    from .emulator.faults import validate

    try:
        validate(name, dict(params))   # the emulator's own check: names and parameters
    except UnknownFault as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    return Fault(at_s=_number(item, "at_s", where, required=True, minimum=0, maximum=3600),
                 name=name, params=dict(params))


def _track(value: Any, path: Path | None, where: str) -> TrackSpec:
    if value is None:
        return TrackSpec(lat=-22.2758, lon=166.4580)
    if not isinstance(value, dict):
        raise ScenarioError(f"{where}: handset.track must be {{lat, lon}} or {{nmea = \"file\"}}")
    _no_unknown(value, {"lat", "lon", "nmea"}, where, "handset.track.")
    if "nmea" in value:
        if not isinstance(value["nmea"], str):
            raise ScenarioError(f"{where}: handset.track.nmea must be a file name")
        nmea = Path(value["nmea"])
        if not nmea.is_absolute() and path is not None:
            nmea = path.parent / nmea
        if path is not None and not nmea.exists():
            raise ScenarioError(f"{where}: handset.track.nmea: no such file {nmea}")
        return TrackSpec(nmea=nmea)
    lat = _number(value, "lat", where, required=True, minimum=-90, maximum=90, prefix="handset.track.")
    lon = _number(value, "lon", where, required=True, minimum=-180, maximum=180, prefix="handset.track.")
    return TrackSpec(lat=lat, lon=lon)


def _expectations(table: dict[str, Any], where: str) -> Expectations:
    _no_unknown(table, _EXPECT_KEYS, where, "expect.")
    within = table.get("within_s", {})
    if not isinstance(within, dict):
        raise ScenarioError(f"{where}: expect.within_s must be a table channel = seconds")
    for channel, seconds in within.items():
        if channel not in CHANNELS:
            raise ScenarioError(f"{where}: expect.within_s.{channel}: unknown channel "
                                f"(known: {', '.join(CHANNELS)})")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ScenarioError(f"{where}: expect.within_s.{channel} must be seconds >= 0")
    absent = _str_list(table, "absent", where)
    for channel in absent:
        if channel not in CHANNELS:
            raise ScenarioError(f"{where}: expect.absent: unknown channel {channel!r}")
    both = set(absent) & set(within)
    if both:
        raise ScenarioError(f"{where}: expect: {sorted(both)} both required and absent")
    method = table.get("fix_method")
    if method is not None and method not in ("G", "C"):
        raise ScenarioError(f"{where}: expect.fix_method must be \"G\" or \"C\"")
    alarms = table.get("alarms")
    if alarms is not None and (isinstance(alarms, bool) or not isinstance(alarms, int) or alarms < 0):
        raise ScenarioError(f"{where}: expect.alarms must be an integer >= 0")
    return Expectations(
        alarms=alarms,
        within_s={k: float(v) for k, v in within.items()},
        absent=tuple(absent),
        fix_method=method,
        fix_error_max_m=_number(table, "fix_error_max_m", where, default=None, minimum=0,
                                maximum=1e6, prefix="expect."),
        log_sequence=tuple(_str_list(table, "log_sequence", where)),
        log_absent=tuple(_str_list(table, "log_absent", where)),
        calls_answered_min=_opt_int(table, "calls_answered_min", where),
        sms_delivered_min=_opt_int(table, "sms_delivered_min", where),
    )


# -- validation helpers --------------------------------------------------------------------


def _no_unknown(table: dict[str, Any], known: set[str], where: str, prefix: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {', '.join(prefix + k for k in unknown)} "
                            f"(known: {', '.join(sorted(known))})")


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ScenarioError(f"{where}: [{key}] must be a table")
    return value


def _list(data: dict[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ScenarioError(f"{where}: {key} must be an array of tables ([[{key}]])")
    return value


def _str_list(data: dict[str, Any], key: str, where: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ScenarioError(f"{where}: expect.{key} must be a list of strings")
    return value


def _opt_int(data: dict[str, Any], key: str, where: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ScenarioError(f"{where}: expect.{key} must be an integer >= 0")
    return value


def _typed(data: dict[str, Any], key: str, kind: type, where: str, default: Any = None,
           required: bool = False, prefix: str = "") -> Any:
    if key not in data:
        if required and default is None:
            raise ScenarioError(f"{where}: {prefix}{key} is required")
        return default
    value = data[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ScenarioError(f"{where}: {prefix}{key} must be a {kind.__name__}, not {value!r}")
    return value


def _number(data: dict[str, Any], key: str, where: str, default: float | None = None,
            required: bool = False, minimum: float | None = None, maximum: float | None = None,
            prefix: str = "") -> Any:
    if key not in data:
        if required:
            raise ScenarioError(f"{where}: {prefix}{key} is required")
        return default
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{where}: {prefix}{key} must be a number, not {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ScenarioError(f"{where}: {prefix}{key}={value} is out of range [{minimum}, {maximum}]")
    return float(value)
