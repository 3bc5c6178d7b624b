# Typed errors of the modem layer (docs/interfaces.md §3).
# The alarm layer decides what to retry from the type, never from a message text.
# (Few classes with an __init__ of their own: each costs heap on the board.)


class ModemError(Exception):
    """Base class of everything the AT engine and the SIM7600 driver raise."""


class AtTimeout(ModemError):
    """No final result code in time. `partial_lines`: what the command got so far."""

    def __init__(self, cmd, partial_lines):
        super().__init__(cmd)
        self.cmd = cmd
        self.partial_lines = partial_lines


class AtError(ModemError):
    """A final `ERROR` (or `NO CARRIER`, `BUSY`, `NO ANSWER` ending a dial). `line`: that line.

    `code`: for CmeError/CmsError, an int (AT+CMEE=1) or the verbose text (AT+CMEE=2).
    """

    def __init__(self, line, code=None):
        super().__init__(line)
        self.line = line
        self.code = code


class CmeError(AtError):
    """`+CME ERROR: <code>`."""


class CmsError(AtError):
    """`+CMS ERROR: <code>` (SMS)."""


class ProtocolError(AtError):
    """The modem answered, but not in a form the driver understands. `line`: what it said."""


class ModemRebooted(ModemError):
    """`RDY` arrived while this command or wait was in progress: the modem restarted."""


class CallFailed(ModemError):
    """The dial did not start a call: `reason` in "busy", "no_carrier", "no_answer", "error",
    "timeout", "reboot", "invalid_number"."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class ModemSilent(ModemError):
    """The modem answered nothing, even after a PWRKEY power-on: `stage` says where
    ("power_on", "power_cycle", "init", "init_reboots")."""

    def __init__(self, stage):
        super().__init__(stage)
        self.stage = stage
