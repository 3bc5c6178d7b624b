"""Typed errors of the rig: each says what went wrong and where to look."""

from __future__ import annotations


class RigError(Exception):
    """Base class of every error the rig raises on purpose."""


class ExpectTimeout(RigError):
    """An expected log line did not come in time.

    The message carries the recent log lines and the path of the full log, so a
    failing test shows what the handset was doing.
    """

    def __init__(self, what: str, timeout_s: float, recent: list[str], log_path: str | None):
        self.what = what
        self.timeout_s = timeout_s
        self.recent = recent
        self.log_path = log_path
        tail = "\n".join(f"    | {line}" for line in recent) or "    | (nothing logged)"
        where = f"full log: {log_path}" if log_path else "full log: (not written to a file)"
        super().__init__(f"timed out after {timeout_s:.1f} s waiting for {what}\n"
                         f"  last {len(recent)} lines of the device log:\n{tail}\n  {where}")


class WaitTimeout(RigError):
    """A rig-side condition (a call, an SMS, a server alarm) did not happen in time."""


class ScenarioError(RigError):
    """A scenario file is not valid: the message names the file and the key."""


class RigConfigError(RigError):
    """The rig description (rig.toml) is missing something or is not valid."""


class Unsupported(RigError):
    """The backend cannot do this (e.g. fault injection on a real network)."""


class FirmwareExited(ExpectTimeout):
    """The firmware process ended by itself while the rig waited for a line."""

    def __init__(self, what: str, reason: str, recent: list[str], log_path: str | None):
        super().__init__(what, 0.0, recent, log_path)
        self.args = (f"the firmware ended ({reason}) while waiting for {what}\n"
                     + str(self).split("\n", 1)[1],)
