"""State of one emulated modem: settings lost at every reboot, and the SIM's SMS store."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

# Call states of +CLCC (27.007).
CALL_ACTIVE, CALL_HELD, CALL_DIALING, CALL_ALERTING, CALL_INCOMING, CALL_WAITING = 0, 1, 2, 3, 4, 5
CALL_DISCONNECT = 6


@dataclass
class HttpSession:
    """AT+HTTPINIT .. AT+HTTPTERM."""

    url: str | None = None
    userdata: str = ""
    content: str = "text/plain"
    connect_timeout_s: float | None = None
    recv_timeout_s: float | None = None
    body: bytes = b""
    in_flight: bool = False
    response: bytes | None = None
    status: int | None = None


@dataclass
class ModemSettings:
    """Everything AT commands set; a reboot starts again from these defaults."""

    echo: bool = True
    cmee: int = 0
    creg_n: int = 0
    cgreg_n: int = 0
    cereg_n: int = 0
    clcc_urc: bool = False
    clip: bool = False
    cvhu: int = 1
    clvl: int = 3
    vmute: int = 0
    cmut: int = 0
    cmgf: int = 0
    cscs: str = "IRA"
    csmp: tuple[int, int, int, int] = (17, 167, 0, 0)
    cnmi: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    ctzu: int = 0
    clock_synced: bool = False  # network time taken since power-on (CTZU=1 while registered)
    csclk: int = 0
    apn: dict[int, tuple[str, str]] = field(default_factory=dict)
    netopen: bool = False
    gnss_on: bool = False
    gnss_mode: int = 1
    gnss_started: float = 0.0  # monotonic
    gnss_ttff_s: float = 0.0
    gnss_fixed: bool = False  # a fix was reported since the last AT+CGPS=1
    http: HttpSession | None = None
    mqtt: Any = None  # cmd_mqtt.MqttService between AT+CMQTTSTART and AT+CMQTTSTOP
    next_mr: int = 0


@dataclass
class StoredSms:
    sender: str
    text: str
    scts_epoch: float
    read: bool = False


class SmsStore:
    """The SIM's message storage ("SM"): survives reboots, has a capacity, indices from 0."""

    def __init__(self, capacity: int = 30):
        if capacity < 1:
            raise ValueError("SMS storage capacity must be at least 1")
        self.capacity = capacity
        self.slots: list[StoredSms | None] = [None] * capacity

    @property
    def used(self) -> int:
        return sum(1 for s in self.slots if s is not None)

    def store(self, sms: StoredSms) -> int | None:
        """Index where it was stored, or None when the storage is full."""
        for i, slot in enumerate(self.slots):
            if slot is None:
                self.slots[i] = sms
                return i
        return None

    def valid_index(self, index: int) -> bool:
        return 0 <= index < self.capacity


@dataclass
class Call:
    """One voice call as this modem sees it (id, direction, state) plus the far end."""

    call_id: int
    outgoing: bool
    number: str  # the far end's number as shown in +CLCC
    state: int
    created: float = field(default_factory=time.monotonic)
    connected: float | None = None
    remote: object | None = None  # a Link (see voice.py)

    def duration_hhmmss(self) -> str:
        if self.connected is None:
            return "000000"
        seconds = int(time.monotonic() - self.connected)
        return f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"
