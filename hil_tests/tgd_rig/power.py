"""Standby power budget: what the firmware does between alarms, and what it costs.

`tgd-rig power` boots one emulated handset (the real firmware on MicroPython, the
SIM7600 emulator, the real server), leaves it idle for a few heartbeat intervals at
fast timing, and reads what crossed the modem's line from the emulator's transcript
and network events: AT commands, bytes each way, HTTP requests, SMS, GNSS on time,
and the modem's busy time per exchange (command sent -> final result, or -> the
asynchronous answer for HTTPACTION / HTTPREAD). Busy times are brought back to
realistic timing with the emulator's own `Timing.realistic()` delays and the UART at
115200 baud (`realistic_duration`).

Sleep is measured, not assumed: the ESP32's time asleep comes from the firmware's
own records (each HEARTBEAT line carries `slept` and `span`, in ms, since the previous
one: app.py sleeps in the board's hook until asyncio's next timer), the modem's from
the emulator's transcript (`sleep` / `wake` entries: AT+CSCLK=1, DTR high, idle 15-20
s). The budget multiplies the measured times by datasheet currents (`CURRENTS`, each
with its source) for one day of standby.

Everything from `parse_exchanges` down to `autonomy_days` is a pure function of its
inputs; only `measure_standby` does I/O.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RigError

DAY_S = 86400.0
HOUR_S = 3600.0
BATTERY_MAH = 3000.0          # LilyGO T-SIM7600X with one 18650 cell
USABLE_FRACTION = 0.8         # derated 20%: cut-off voltage, ageing, cold, self-discharge
TARGET_DAYS = 14.0
# A board's ADC battery check runs every 60 s (firmware/tgd/timing.py battery_check_ms);
# exchanges closer together than a fraction of that period belong to the same burst.
BATTERY_CHECK_S = 60.0
BURST_GAP_FRACTION = 0.4
# After the last byte of a transfer an LTE modem stays RRC-connected until the
# network's inactivity timer releases it (set by the operator, ~10 s is common).
LTE_TAIL_S = 10.0

FINAL_RESULTS = ("OK", "ERROR", "+CME ERROR", "+CMS ERROR", "NO CARRIER", "BUSY", "NO ANSWER")
# Commands whose answer arrives after the final result code, and the line that ends it.
ASYNC_END = {"AT+HTTPACTION": "+HTTPACTION:", "AT+HTTPREAD": "+HTTPREAD: 0"}
# The emulator's network delay inside an exchange (emulator/timing.py field names).
NETWORK_DELAY = {"AT+HTTPACTION": "http_rtt_s", "AT+CMGS": "sms_submit_s",
                 "AT+NETOPEN": "netopen_s", "AT+CMQTTCONNECT": "http_rtt_s"}


# -- the transcript, read back (pure) -------------------------------------------------------

@dataclass
class Exchange:
    command: str               # the command's name, e.g. "AT+CBC", "AT+HTTPACTION"
    line: str                  # the command line as sent
    t_start: float             # host monotonic time: the command line reached the modem
    t_end: float | None = None  # its final result (or asynchronous answer)
    bytes_to_modem: int = 0
    bytes_from_modem: int = 0

    @property
    def duration_s(self) -> float:
        return 0.0 if self.t_end is None else self.t_end - self.t_start


def command_name(line: str) -> str:
    """'AT+HTTPPARA="URL","..."' -> 'AT+HTTPPARA'; 'AT+CPSI?' -> 'AT+CPSI'; 'ATD17;' -> 'ATD'."""
    text = line.strip().upper()
    if text.startswith("ATD"):
        return "ATD"
    for i, ch in enumerate(text):
        if ch in "=?" or (i > 2 and ch in ";"):
            return text[:i]
    return text


# Commands followed by a payload of a length given in their arguments (argument index).
PAYLOAD_LENGTH_ARG = {"AT+HTTPDATA": 0, "AT+CMQTTTOPIC": 1, "AT+CMQTTPAYLOAD": 1,
                      "AT+CMQTTSUB": 1, "AT+CMQTTSUBTOPIC": 1, "AT+CMQTTUNSUB": 1,
                      "AT+CMQTTWILLTOPIC": 1, "AT+CMQTTWILLMSG": 1}


def payload_length(line: str) -> int:
    """Bytes of payload the host sends after this command's prompt; -1: text up to Ctrl-Z."""
    name = command_name(line)
    if name == "AT+CMGS":
        return -1
    index = PAYLOAD_LENGTH_ARG.get(name)
    if index is None or "=" not in line:
        return 0
    args = line.split("=", 1)[1].split(",")
    try:
        return max(0, int(args[index]))
    except (IndexError, ValueError):
        return 0


def _is_final(line: str) -> bool:
    return any(line == f or line.startswith(f + ":") for f in FINAL_RESULTS)


def parse_exchanges(entries: list[tuple[float, str, bytes]]) -> tuple[list[Exchange], int]:
    """(time, direction "rx"/"tx", bytes) in time order -> exchanges, and the count of
    lines from the modem that answered no command (URCs).

    rx: host -> modem; tx: modem -> host (emulator/transcript.py). A command opens at
    the time its terminating CR reached the modem; bytes are counted to the exchange
    open at that moment (payloads after a prompt included)."""
    exchanges: list[Exchange] = []
    open_ex: Exchange | None = None           # waiting for its final result
    waiting: dict[str, Exchange] = {}         # end line -> exchange waiting for an async answer
    rx_buf = b""
    tx_buf = b""
    payload_left = 0                          # bytes of payload still to come; -1: up to Ctrl-Z
    urcs = 0
    for t, direction, data in entries:
        if direction == "rx":
            if open_ex is not None:
                open_ex.bytes_to_modem += len(data)
            rx_buf += data
            while True:
                if payload_left > 0:          # the payload after a prompt: not a command
                    taken = min(payload_left, len(rx_buf))
                    rx_buf, payload_left = rx_buf[taken:], payload_left - taken
                elif payload_left < 0:        # SMS text: up to Ctrl-Z (send) or ESC (cancel)
                    ends = [i for i in (rx_buf.find(b"\x1a"), rx_buf.find(b"\x1b")) if i >= 0]
                    if not ends:
                        rx_buf = b""
                        break
                    rx_buf, payload_left = rx_buf[min(ends) + 1:], 0
                if payload_left != 0 or b"\r" not in rx_buf:
                    break
                raw, rx_buf = rx_buf.split(b"\r", 1)
                line = raw.strip(b"\n").decode("latin-1").strip()
                if not line.upper().startswith("AT"):
                    continue                  # noise
                payload_left = payload_length(line)
                ex = Exchange(command_name(line), line, t, bytes_to_modem=len(raw) + 1)
                if open_ex is not None and open_ex.t_end is None:
                    open_ex.t_end = t         # the host moved on without a final result
                exchanges.append(ex)
                open_ex = ex
        elif direction == "tx":
            owner = open_ex if open_ex is not None else (next(iter(waiting.values()))
                                                         if waiting else None)
            if owner is not None:
                owner.bytes_from_modem += len(data)
            tx_buf += data
            while b"\n" in tx_buf:
                raw, tx_buf = tx_buf.split(b"\n", 1)
                line = raw.strip(b"\r").decode("latin-1").strip()
                if not line:
                    continue
                ended = next((end for end in waiting if line.startswith(end)), None)
                if ended is not None:
                    waiting.pop(ended).t_end = t
                    continue
                if open_ex is not None and _is_final(line):
                    end = ASYNC_END.get(open_ex.command)
                    if end is not None and line == "OK":
                        waiting[end] = open_ex
                    else:
                        open_ex.t_end = t
                    open_ex = None
                elif open_ex is None and not waiting:
                    urcs += 1
    for ex in exchanges:
        if ex.t_end is None:
            ex.t_end = ex.t_start
    return exchanges, urcs


def realistic_duration(ex: Exchange, fast, real) -> float:
    """An exchange measured at fast timing, brought back to realistic timing.

    The fast run's network delay (the middle of its span) and line time are taken
    out and the realistic ones put in; what is left (the server's and the
    emulator's own work) is kept as measured. `fast`, `real`: emulator Timings."""
    def middle(timing, name: str) -> float:
        value = getattr(timing, name)
        return (value[0] + value[1]) / 2 if isinstance(value, tuple) else float(value)

    def line_s(timing) -> float:
        bps = timing.uart_bps
        return (ex.bytes_to_modem + ex.bytes_from_modem) * 10 / bps if bps else 0.0

    delay = NETWORK_DELAY.get(ex.command)
    fast_delay = middle(fast, delay) if delay else 0.0
    real_delay = middle(real, delay) if delay else 0.0
    rest = max(0.0, ex.duration_s - fast_delay - line_s(fast))
    return rest + real_delay + line_s(real)


def group_bursts(exchanges: list[Exchange], gap_s: float) -> list[list[Exchange]]:
    """Exchanges whose start follows the previous end by less than gap_s, together."""
    bursts: list[list[Exchange]] = []
    for ex in sorted(exchanges, key=lambda e: e.t_start):
        if bursts and ex.t_start - max(e.t_end or e.t_start for e in bursts[-1]) < gap_s:
            bursts[-1].append(ex)
        else:
            bursts.append([ex])
    return bursts


# -- the activity record ------------------------------------------------------------------

@dataclass
class BurstKind:
    """The bursts of one kind (heartbeats, or polls between them), averaged."""
    count: int = 0
    commands: dict[str, float] = field(default_factory=dict)   # per burst
    at_commands: float = 0.0    # per burst
    bytes_to_modem: float = 0.0
    bytes_from_modem: float = 0.0
    busy_s: float = 0.0         # modem busy per burst, realistic timing
    http_s: float = 0.0         # of which an HTTP request in flight (LTE data)
    span_s: float = 0.0         # first command -> last answer, realistic timing


@dataclass
class Activity:
    """What one handset did in standby, measured in an emulated run."""
    heartbeat_interval_s: float
    window_s: float             # standby time covered, in firmware (real) seconds
    scale: float                # the fast run's time scale (wall = real * scale)
    heartbeats: int             # HEARTBEAT lines in the window
    http_requests: int
    sms: int
    at_commands: int
    bytes_to_modem: int
    bytes_from_modem: int
    urcs: int
    gnss_on_s: float
    commands: dict[str, int]
    beat: BurstKind
    poll: BurstKind
    findings: list[str] = field(default_factory=list)
    # Sleep, measured (firmware seconds in the window, realistic timing; see sleep_times)
    esp_awake_s: float = 0.0
    modem_awake_s: float = 0.0
    esp_asleep_wall_fraction: float = 0.0    # as run, before any correction
    modem_asleep_wall_fraction: float = 0.0
    modem_sleeps: int = 0                    # times the modem fell asleep
    dtr_wakes: int = 0                       # times DTR low woke it
    ri_pulses: int = 0                       # URCs while it slept

    def per_hour(self, count: float) -> float:
        return count * HOUR_S / self.window_s if self.window_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Activity:
        data = dict(data)
        data["beat"] = BurstKind(**data["beat"])
        data["poll"] = BurstKind(**data["poll"])
        return cls(**data)


def summarise(bursts: list[list[Exchange]], fast, real) -> BurstKind:
    if not bursts:
        return BurstKind()
    n = len(bursts)
    names: Counter[str] = Counter()
    kind = BurstKind(count=n)
    for burst in bursts:
        names.update(ex.command for ex in burst)
        kind.at_commands += len(burst)
        kind.bytes_to_modem += sum(ex.bytes_to_modem for ex in burst)
        kind.bytes_from_modem += sum(ex.bytes_from_modem for ex in burst)
        busy = [realistic_duration(ex, fast, real) for ex in burst]
        kind.busy_s += sum(busy)
        kind.http_s += sum(b for ex, b in zip(burst, busy, strict=True)
                           if ex.command == "AT+HTTPACTION")
        # the host's own time between exchanges (firmware work, on a PC) is kept as measured
        gaps = sum(max(0.0, nxt.t_start - (cur.t_end or cur.t_start))
                   for cur, nxt in zip(burst, burst[1:], strict=False))
        kind.span_s += sum(busy) + gaps
    kind.commands = {k: v / n for k, v in sorted(names.items())}
    for name in ("at_commands", "bytes_to_modem", "bytes_from_modem", "busy_s", "http_s", "span_s"):
        setattr(kind, name, getattr(kind, name) / n)
    return kind


def gnss_on_wall_s(exchanges: list[Exchange], t_end: float) -> float:
    """CGPS=1 -> CGPS=0 (or the end of the window), in wall seconds."""
    total, since = 0.0, None
    for ex in exchanges:
        text = ex.line.upper().replace(" ", "")
        if text.startswith("AT+CGPS=1") and since is None:
            since = ex.t_start
        elif text.startswith("AT+CGPS=0") and since is not None:
            total += ex.t_start - since
            since = None
    if since is not None:
        total += t_end - since
    return total


def modem_sleep_wall(entries: list[tuple[float, str, bytes]], t_start: float,
                     t_end: float) -> tuple[float, int, int, int]:
    """(wall seconds asleep, sleeps, DTR wakes, RI pulses) in [t_start, t_end), from the
    emulator's transcript `sleep` / `wake` / `ri` entries."""
    asleep_since: float | None = None
    total, sleeps, wakes, ri = 0.0, 0, 0, 0
    for t, direction, data in entries:
        if t >= t_end:
            break
        if direction == "sleep":
            if t >= t_start:
                sleeps += 1
            asleep_since = max(t, t_start)
        elif direction == "wake":
            if asleep_since is not None and t >= t_start:
                total += t - asleep_since
            if t >= t_start and data == b"DTR low":
                wakes += 1
            asleep_since = None
        elif direction == "ri" and t >= t_start:
            ri += 1
    if asleep_since is not None:
        total += t_end - asleep_since
    return total, sleeps, wakes, ri


def sleep_times(exchanges: list[Exchange], *, window_wall: float, esp_slept_wall: float,
                esp_span_wall: float, modem_asleep_wall: float, dtr_wakes: int, scale: float,
                fast, real) -> tuple[float, float]:
    """(ESP32 awake, modem awake) in firmware seconds, realistic timing.

    Exchanges (command -> answer) are replaced by their realistic durations. The rest
    of the ESP32's awake time is its own work (CPU on this PC, the unscaled 20 ms DTR
    wake): kept as measured. The rest of the modem's awake time is the firmware's
    idle delay before DTR goes high and the module's 15-20 s before it sleeps, both
    scaled: divided by the scale (the unscaled DTR wakes and the PC's CPU time between
    commands are not: the first is taken out and put back, the second is inflated, so
    the modem's figure errs high)."""
    ex_wall = sum(ex.duration_s for ex in exchanges)
    ex_real = sum(realistic_duration(ex, fast, real) for ex in exchanges)
    window = window_wall / scale
    # no sleep records (a firmware that never reports sleep): awake all the window
    esp = max(0.0, esp_span_wall - esp_slept_wall - ex_wall) + ex_real if esp_span_wall > 0 else window
    dtr = dtr_wakes * fast.dtr_wake_s
    modem = max(0.0, window_wall - modem_asleep_wall - ex_wall - dtr) / scale + dtr + ex_real
    return min(esp, window), min(modem, window)


def build_activity(entries: list[tuple[float, str, bytes]], net_events: list[dict[str, Any]],
                   heartbeat_lines: int, *, t_start: float, t_end: float, scale: float,
                   heartbeat_interval_s: float, msisdn: str, fast, real,
                   esp_sleep: tuple[float, float] = (0.0, 0.0)) -> Activity:
    """The activity in [t_start, t_end) (host monotonic times, wall seconds).

    esp_sleep: (slept, span) wall seconds the firmware reported for the window."""
    if t_end <= t_start or scale <= 0:
        raise RigError(f"empty measurement window ({t_start}..{t_end}, scale {scale})")
    window = [e for e in entries if t_start <= e[0] < t_end]
    exchanges, urcs = parse_exchanges(window)
    asleep, sleeps, wakes, ri = modem_sleep_wall(entries, t_start, t_end)
    window_wall = t_end - t_start
    esp_awake, modem_awake = sleep_times(
        exchanges, window_wall=window_wall, esp_slept_wall=esp_sleep[0],
        esp_span_wall=esp_sleep[1], modem_asleep_wall=asleep, dtr_wakes=wakes, scale=scale,
        fast=fast, real=real)
    gap = BATTERY_CHECK_S * scale * BURST_GAP_FRACTION
    bursts = group_bursts(exchanges, gap)
    beats = [b for b in bursts if any(ex.command == "AT+HTTPACTION" for ex in b)]
    polls = [b for b in bursts if not any(ex.command == "AT+HTTPACTION" for ex in b)]
    mine = [e for e in net_events if t_start <= e.get("t", 0) < t_end
            and (e.get("modem") == msisdn)]
    return Activity(
        heartbeat_interval_s=heartbeat_interval_s,
        window_s=(t_end - t_start) / scale,
        scale=scale,
        heartbeats=heartbeat_lines,
        http_requests=sum(1 for e in mine if e["kind"] == "http_request"),
        sms=sum(1 for e in mine if e["kind"] == "sms_submitted"),
        at_commands=len(exchanges),
        bytes_to_modem=sum(ex.bytes_to_modem for ex in exchanges),
        bytes_from_modem=sum(ex.bytes_from_modem for ex in exchanges),
        urcs=urcs,
        gnss_on_s=gnss_on_wall_s(exchanges, t_end) / scale,
        commands=dict(sorted(Counter(ex.command for ex in exchanges).items())),
        beat=summarise(beats, fast, real),
        poll=summarise(polls, fast, real),
        findings=firmware_findings(parse_exchanges(entries)[0], polls, sleeps),
        esp_awake_s=esp_awake,
        modem_awake_s=modem_awake,
        esp_asleep_wall_fraction=esp_sleep[0] / esp_sleep[1] if esp_sleep[1] > 0 else 0.0,
        modem_asleep_wall_fraction=asleep / window_wall,
        modem_sleeps=sleeps,
        dtr_wakes=wakes,
        ri_pulses=ri,
    )


def firmware_findings(exchanges: list[Exchange], polls: list[list[Exchange]],
                      modem_sleeps: int) -> list[str]:
    """What the firmware does (not) do for power, as seen on the line and in its source.
    `exchanges`: the whole run's; `polls`: the window's bursts without a heartbeat."""
    found = []
    sent = {ex.command for ex in exchanges}
    if "AT+CSCLK" not in sent:
        found.append("AT+CSCLK=1 is never sent: the SIM7600 never enters its sleep mode")
    elif modem_sleeps == 0:
        found.append("AT+CSCLK=1 is sent but the modem never slept in the window (DTR high?)")
    repo = Path(__file__).resolve().parents[2] / "firmware"
    source = ""
    for path in sorted(repo.rglob("*.py")):  # main.py, tgd/, boards/ (lightsleep: boards/esp32.py)
        if "tests" not in path.relative_to(repo).parts:
            source += path.read_text(encoding="utf-8")
    if "lightsleep" not in source:
        found.append("the firmware never calls machine.lightsleep(): the ESP32 stays awake")
    if "dtr(1)" not in source.replace(" ", ""):
        found.append("DTR is never raised: the modem cannot sleep")
    if any(ex.command == "AT+CBC" for burst in polls for ex in burst):
        found.append("the battery is read through the modem (AT+CBC) between heartbeats: "
                     "each read wakes the modem")
    return found


# -- currents and the budget (pure) -------------------------------------------------------

@dataclass(frozen=True)
class Current:
    ma: float
    source: str


ESP32_DS = "Espressif ESP32 Series Datasheet, 'Power consumption by power modes'"
CURRENTS: dict[str, Current] = {
    "esp32_active": Current(
        30.0, ESP32_DS + ": modem-sleep (CPU on, radio off) at 160 MHz (ESP-IDF's default "
        "clock, kept by MicroPython unless machine.freq() changes it), dual-core 27-44 mA "
        "(80 MHz: 20-31 mA); 30 mA assumed for a CPU idling in asyncio sleeps"),
    "esp32_light_sleep": Current(0.8, ESP32_DS + ": light-sleep 0.8 mA"),
    "sim7600_idle": Current(
        20.0, "typical value, NOT confirmed in SIMCom's SIM7600 Hardware Design (its current "
        "table was not found in the sources at hand): registered on LTE, DTR low, UART "
        "awake; LilyGO T-SIM7600 users measure ~20 mA with the modem awake "
        "(github.com/Xinyuan-LilyGO/T-SIM7600X issues 13 and 142)"),
    "sim7600_sleep": Current(
        2.0, "typical value, NOT confirmed in the Hardware Design table: sleep mode "
        "(AT+CSCLK=1, DTR high, paging DRX) ~2 mA as quoted for the SIM7600 in "
        "T-SIM7600X issue 13"),
    "sim7600_lte_data": Current(
        250.0, "typical value, NOT confirmed: LTE Cat-1/4 transfer at moderate transmit "
        "power (peaks reach ~2 A at full power)"),
    "sim7600_lte_tail": Current(
        60.0, "assumption: RRC-connected, no data, until the network releases the radio "
        f"(~{LTE_TAIL_S:.0f} s, operator-set)"),
    "sim7600_gnss": Current(
        50.0, "typical value, NOT confirmed: GNSS engine tracking on top of the idle current"),
}


@dataclass(frozen=True)
class Row:
    state: str
    seconds: float              # per day
    current: Current
    origin: str                 # where the time comes from

    @property
    def mah(self) -> float:
        return self.seconds * self.current.ma / HOUR_S


@dataclass(frozen=True)
class Budget:
    name: str
    rows: list[Row]

    @property
    def mah_per_day(self) -> float:
        return sum(r.mah for r in self.rows)

    def days(self, capacity_mah: float = BATTERY_MAH, usable: float = USABLE_FRACTION) -> float:
        return autonomy_days(self.mah_per_day, capacity_mah, usable)


def autonomy_days(mah_per_day: float, capacity_mah: float = BATTERY_MAH,
                  usable: float = USABLE_FRACTION) -> float:
    if mah_per_day <= 0:
        raise ValueError("a day in standby must cost some charge")
    return capacity_mah * usable / mah_per_day


def budget_measured(activity: Activity, currents: dict[str, Current] = CURRENTS) -> Budget:
    """One day in standby from the run: its times per window, times a day's windows."""
    a = activity
    per_day = DAY_S / a.window_s
    beats = a.beat.count * per_day
    esp_awake = min(DAY_S, a.esp_awake_s * per_day)
    modem_awake = min(DAY_S, a.modem_awake_s * per_day)
    data = min(modem_awake, beats * a.beat.http_s)
    # the LTE tail runs inside the modem's awake time before it sleeps
    tail = min(beats * LTE_TAIL_S, max(0.0, modem_awake - data)) if a.beat.http_s > 0 else 0.0
    gnss = a.gnss_on_s * per_day
    run = f"measured: {a.window_s / HOUR_S:.1f} h run"
    return Budget("measured (firmware as it is)", [
        Row("ESP32 awake", esp_awake, currents["esp32_active"],
            f"{run}, firmware's sleep records; exchanges at realistic timing"),
        Row("ESP32 light sleep", DAY_S - esp_awake, currents["esp32_light_sleep"],
            f"{run}: {a.esp_asleep_wall_fraction:.2%} of it asleep"),
        Row("SIM7600 LTE data (HTTP request in flight)", data, currents["sim7600_lte_data"],
            f"measured: {beats:.0f} heartbeats x HTTP {a.beat.http_s:.2f} s"),
        Row("SIM7600 LTE connected tail after each request", tail, currents["sim7600_lte_tail"],
            f"assumption: {LTE_TAIL_S:.0f} s per request, inside the awake time"),
        Row("SIM7600 awake idle", max(0.0, modem_awake - data - tail), currents["sim7600_idle"],
            f"{run}, emulator's sleep/wake records: exchanges + the firmware's 1 s before "
            "DTR high + the module's 15-20 s before it sleeps"),
        Row("SIM7600 sleep", DAY_S - modem_awake, currents["sim7600_sleep"],
            f"{run}: asleep {a.modem_sleeps} times, woken {a.dtr_wakes} by DTR, "
            f"{a.ri_pulses} RI pulses"),
        Row("SIM7600 GNSS on", gnss, currents["sim7600_gnss"],
            f"measured: {a.gnss_on_s:.0f} s in the run"),
    ])


def budgets(activity: Activity) -> list[Budget]:
    return [budget_measured(activity)]


def required_average_ma(days: float = TARGET_DAYS, capacity_mah: float = BATTERY_MAH,
                        usable: float = USABLE_FRACTION) -> float:
    return capacity_mah * usable / days / 24.0


# -- formatting (pure) ---------------------------------------------------------------------

def format_activity(a: Activity) -> str:
    hours = a.window_s / HOUR_S
    lines = [f"standby measured: {a.window_s:.0f} s of firmware time ({hours:.2f} h) at time "
             f"scale {a.scale}, heartbeat every {a.heartbeat_interval_s:.0f} s",
             f"{'':34} {'total':>9} {'per heartbeat':>14} {'per hour':>10}"]

    def row(name: str, total: float, per_beat: float | None) -> None:
        pb = "-" if per_beat is None else f"{per_beat:.1f}"
        lines.append(f"  {name:32} {total:9.0f} {pb:>14} {a.per_hour(total):10.1f}")

    beats = a.heartbeats or 1
    row("heartbeats", a.heartbeats, None)
    row("HTTP requests", a.http_requests, a.http_requests / beats)
    row("SMS", a.sms, a.sms / beats)
    row("AT commands", a.at_commands, a.at_commands / beats)
    row("bytes to the modem", a.bytes_to_modem, a.bytes_to_modem / beats)
    row("bytes from the modem", a.bytes_from_modem, a.bytes_from_modem / beats)
    row("unsolicited lines (URCs)", a.urcs, a.urcs / beats)
    row("GNSS on (s)", a.gnss_on_s, a.gnss_on_s / beats)
    row("battery polls between beats", a.poll.count, a.poll.count / beats)
    lines.append("  heartbeat burst (realistic timing): "
                 f"{a.beat.at_commands:.0f} commands, modem busy {a.beat.busy_s:.2f} s "
                 f"(HTTP {a.beat.http_s:.2f} s), span {a.beat.span_s:.2f} s; "
                 + ", ".join(f"{k} x{v:g}" for k, v in a.beat.commands.items()))
    if a.poll.count:
        lines.append("  poll burst (realistic timing): "
                     f"{a.poll.at_commands:.0f} commands, modem busy {a.poll.busy_s * 1000:.1f} ms, "
                     + ", ".join(f"{k} x{v:g}" for k, v in a.poll.commands.items()))
    lines.append(f"  ESP32 asleep {a.esp_asleep_wall_fraction:.2%} of the run; awake "
                 f"{a.esp_awake_s:.1f} s of {a.window_s:.0f} s at realistic timing")
    lines.append(f"  modem asleep {a.modem_asleep_wall_fraction:.2%} of the run "
                 f"({a.modem_sleeps} sleeps, {a.dtr_wakes} DTR wakes, {a.ri_pulses} RI pulses); "
                 f"awake {a.modem_awake_s:.1f} s of {a.window_s:.0f} s at realistic timing")
    lines.append("  found in the firmware:" + ("" if a.findings else " nothing missing"))
    lines.extend(f"    - {f}" for f in a.findings)
    return "\n".join(lines)


def format_budget(b: Budget) -> str:
    lines = [f"budget, one day in standby: {b.name}",
             f"  {'state':50} {'time/day':>10} {'mA':>7} {'mAh':>8}  origin of the time"]
    for r in b.rows:
        t = f"{r.seconds / HOUR_S:.2f} h" if r.seconds >= 600 else f"{r.seconds:.0f} s"
        lines.append(f"  {r.state:50} {t:>10} {r.current.ma:7.1f} {r.mah:8.1f}  {r.origin}")
    lines.append(f"  {'total':50} {'':10} {'':7} {b.mah_per_day:8.1f}")
    days = b.days()
    verdict = "meets" if days >= TARGET_DAYS else "MISSES"
    lines.append(f"  autonomy: {BATTERY_MAH:.0f} mAh x {USABLE_FRACTION:.0%} usable / "
                 f"{b.mah_per_day:.1f} mAh/day = {days:.1f} days ({verdict} the "
                 f"{TARGET_DAYS:.0f}-day target)")
    return "\n".join(lines)


def format_sources() -> str:
    lines = ["currents:"]
    lines.extend(f"  {name:18} {c.ma:7.1f} mA  {c.source}" for name, c in CURRENTS.items())
    lines.append(f"the {TARGET_DAYS:.0f}-day target needs an average of "
                 f"{required_average_ma():.2f} mA on {BATTERY_MAH:.0f} mAh x {USABLE_FRACTION:.0%}")
    return "\n".join(lines)


# -- the measured run (I/O) ----------------------------------------------------------------

def measure_standby(heartbeats: int = 4, interval_s: float = 1800.0, scale: float = 0.005,
                    workdir: Path | None = None, device_id: str = "PW0001",
                    on_progress=None) -> Activity:
    """Boot one emulated handset and leave it idle for `heartbeats` intervals.

    The window runs from the first HEARTBEAT line to the one `heartbeats` intervals
    later: it holds exactly that many heartbeat bursts, and the firmware's sleep
    records of the lines after the first cover it."""
    from .emulated import EmulatedRig
    from .emulator.timing import Timing

    if heartbeats < 1:
        raise RigError("--heartbeats must be at least 1")
    fast = Timing.fast(scale)
    real = Timing.realistic()
    wall_interval = interval_s * scale
    with EmulatedRig(workdir, timing=fast) as rig:
        handset = rig.add_handset(device_id, config={"heartbeat_interval_s": int(interval_s)})
        handset.power_on()
        handset.expect("READY", timeout=60)
        first = handset.expect("HEARTBEAT", timeout=60)
        if on_progress:
            on_progress(f"first HEARTBEAT; measuring {heartbeats} heartbeat intervals "
                        f"({heartbeats * wall_interval:.1f} s of wall time)")
        last = first
        for _ in range(heartbeats):
            last = handset.expect("HEARTBEAT", timeout=wall_interval * 3 + 30)
        entries = [(e.t, e.direction, e.data) for e in handset.modem.transcript.entries()]
        if workdir is not None:
            handset.modem.transcript.dump(str(Path(workdir) / "modem-transcript.txt"))
        net_events = list(rig.net.events)
        beats = [ln for ln in handset.log.find("HEARTBEAT", since=first.index + 1)
                 if ln.index <= last.index]
        msisdn = handset.identity.special_number
    slept = sum(float(ln.get("slept") or 0) for ln in beats) / 1000
    span = sum(float(ln.get("span") or 0) for ln in beats) / 1000
    # the window ends just after the last beat's line: its burst is in, the next is not
    return build_activity(entries, net_events, len(beats), t_start=first.t, t_end=last.t + 0.001,
                          scale=scale, heartbeat_interval_s=interval_s, msisdn=msisdn,
                          fast=fast, real=real, esp_sleep=(slept, span))


def report(activity: Activity) -> dict[str, Any]:
    """The activity and the budgets, as JSON."""
    out: dict[str, Any] = {"activity": activity.to_dict(),
                           "budget_heartbeat_interval_s": activity.heartbeat_interval_s,
                           "battery_mah": BATTERY_MAH, "usable_fraction": USABLE_FRACTION,
                           "target_days": TARGET_DAYS, "budgets": []}
    for b in budgets(activity):
        out["budgets"].append({
            "name": b.name, "mah_per_day": round(b.mah_per_day, 2), "days": round(b.days(), 2),
            "rows": [{"state": r.state, "seconds_per_day": round(r.seconds, 1),
                      "ma": r.current.ma, "mah": round(r.mah, 2), "origin": r.origin,
                      "current_source": r.current.source} for r in b.rows]})
    return out


# -- `tgd-rig power` -----------------------------------------------------------------------

def add_power_parser(sub) -> None:
    power = sub.add_parser("power", help="standby power budget from an emulated idle run")
    power.add_argument("--heartbeats", type=int, default=4,
                       help="heartbeat intervals to measure (default 4)")
    power.add_argument("--interval", type=float, default=1800.0,
                       help="heartbeat_interval_s of the run and of the budget (default 1800)")
    power.add_argument("--scale", type=float, default=0.005,
                       help="time scale of the fast run (default 0.005: 30 min in 9 s)")
    power.add_argument("--json", type=Path, help="write the activity and the budgets here")
    power.add_argument("--workdir", type=Path, help="keep the run's logs and database here")


def cmd_power(args) -> int:
    import json
    import sys

    if args.heartbeats < 1 or not 60 <= args.interval <= 86400 or not 0 < args.scale <= 1:
        print("tgd-rig: --heartbeats >= 1, --interval in 60..86400 s, --scale in (0, 1]",
              file=sys.stderr)
        return 2
    activity = measure_standby(args.heartbeats, args.interval, args.scale, workdir=args.workdir,
                               on_progress=lambda text: print(text, flush=True))
    clean = activity.heartbeats >= 1 and activity.http_requests == activity.heartbeats
    if not clean:
        print(f"tgd-rig: the run is not a clean standby ({activity.heartbeats} heartbeats, "
              f"{activity.http_requests} HTTP requests): see the device log", file=sys.stderr)
    print()
    print(format_activity(activity))
    for budget in budgets(activity):
        print()
        print(format_budget(budget))
    print()
    print(format_sources())
    if args.json:
        args.json.write_text(json.dumps(report(activity), indent=2) + "\n",
                             encoding="utf-8")
        print(f"figures written to {args.json}")
    return 0 if clean else 1
