"""Delays of the emulated modem and network.

`Timing.realistic()` takes its defaults from the hardware documents (see
docs/emulator.md for the source of each figure); `Timing.fast(scale)` multiplies
every network and modem delay by `scale` for quick tests. PWRKEY thresholds are
physical pulse lengths measured on the firmware's own clock and are never scaled.
Delays a caller passes explicitly (a police answer delay, a fault's duration,
`schedule(at_s)`) are wall-clock seconds and are not scaled either.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields, replace

Span = tuple[float, float]


@dataclass(frozen=True)
class Timing:
    # Power (Hardware Design V1.05 §3.4: UART ready 11-12 s after the PWRKEY pulse).
    boot_s: Span = (11.0, 12.0)
    reset_s: Span = (13.0, 15.0)  # AT+CRESET: shut down, then a normal boot
    power_off_s: float = 2.0  # AT+CPOF: OK, then the module is off
    # Network (not documented: a few seconds on a live LTE network).
    register_s: Span = (2.0, 4.0)
    netopen_s: Span = (0.3, 0.8)
    # Prompts (`> ` of CMGS, DOWNLOAD of HTTPDATA) come back almost at once.
    prompt_s: float = 0.02
    # Voice.
    call_setup_s: Span = (1.0, 2.0)  # dialling -> alerting
    call_fail_s: Span = (2.0, 4.0)  # dialling -> BUSY / NO CARRIER
    no_answer_s: float = 30.0  # alerting -> NO ANSWER
    police_answer_s: float = 5.0  # default answer delay of a police endpoint
    # SMS (submit ~1-3 s over LTE, delivery report a few seconds later).
    sms_submit_s: Span = (1.0, 3.0)
    sms_delivery_s: Span = (2.0, 5.0)
    # HTTP over LTE: one round trip 300-800 ms on top of the real server time.
    http_rtt_s: Span = (0.3, 0.8)
    http_timeout_s: float = 30.0  # modem-side timeout (not confirmed in the manual)
    # GNSS TTFF, open sky (Hardware Design §4.3.1): hot < 1 s, cold < 35 s.
    gnss_hot_s: Span = (0.5, 1.0)
    gnss_cold_s: Span = (25.0, 35.0)
    gnss_stop_urc_s: float = 0.2  # AT+CGPS=0 -> +CGPS: 0
    hot_start_validity_s: float = 7200.0  # ephemeris kept this long after a fix
    # Modem -> host line rate (default 115200 baud, 10 bits a byte); None: no limit.
    uart_bps: float | None = 115200.0
    # PWRKEY (Hardware Design §3.4): >= 100 ms low switches on, >= 2.5 s switches off.
    pwrkey_on_s: float = 0.1
    pwrkey_off_s: float = 2.5
    # Sleep mode (AT+CSCLK=1, sim7600-at.md "Power"): asleep after 15-20 s idle with DTR
    # high; DTR low wakes it and it listens 20 ms later (a physical delay: never scaled).
    sleep_after_s: Span = (15.0, 20.0)
    dtr_wake_s: float = 0.02
    scale: float = 1.0

    @classmethod
    def realistic(cls) -> Timing:
        return cls()

    @classmethod
    def fast(cls, scale: float = 0.01) -> Timing:
        """Every modem and network delay multiplied by `scale` (PWRKEY excepted)."""
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {scale!r}")
        base = cls()
        changes: dict[str, object] = {"scale": scale}
        for field in fields(cls):
            if field.name in ("pwrkey_on_s", "pwrkey_off_s", "scale", "hot_start_validity_s",
                              "dtr_wake_s"):
                continue
            value = getattr(base, field.name)
            if field.name == "uart_bps":
                changes[field.name] = value / scale if value else None
                continue
            if isinstance(value, tuple):
                changes[field.name] = (value[0] * scale, value[1] * scale)
            else:
                changes[field.name] = value * scale
        return replace(base, **changes)

    def draw(self, name: str, rng: random.Random) -> float:
        """One delay of the named kind: a span gives a uniform draw, a float itself."""
        value = getattr(self, name)
        if isinstance(value, tuple):
            return rng.uniform(value[0], value[1])
        return float(value)
