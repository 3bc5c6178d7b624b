"""Typed errors of the emulator: how a command fails, and how the emulator is misused."""

from __future__ import annotations


class Refused(Exception):
    """The command is refused with a plain ERROR (wrong state, not allowed now)."""


class CmeFailure(Exception):
    """The command fails with +CME ERROR: <code> (ERROR when CMEE=0)."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


class CmsFailure(Exception):
    """An SMS command fails with +CMS ERROR: <code>."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


class EmulatorError(RuntimeError):
    """The emulator was used wrongly (not opened, already opened...)."""


class UnknownFault(ValueError):
    """schedule()/inject() named a fault that does not exist or gave it bad parameters."""
