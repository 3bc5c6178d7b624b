# Typed errors of the modem layer (docs/interfaces.md §3).
# The alarm layer decides what to retry from the type, never from a message text.
# Memory: every class costs ~200 bytes of heap and every method ~150, so the one
# __init__ below serves them all (docs/firmware.md "Memory"): an instance carries
# the attributes of every class, only those of its own class are meaningful.


class ModemError(Exception):
    """Base class of everything the AT engine and the SIM7600 driver raise.

    AtTimeout(cmd, partial_lines): no final result code in time; `partial_lines`
    is what the command got so far. AtError(line, code=None) and its subclasses:
    `line` is the final line, `code` (CmeError/CmsError) an int (AT+CMEE=1) or the
    verbose text (AT+CMEE=2). CallFailed(reason), ModemSilent(stage).
    """

    def __init__(self, what, more=None):
        super().__init__(what)
        self.cmd = self.line = self.reason = self.stage = what
        self.partial_lines = self.code = more


class AtTimeout(ModemError):
    """No final result code in time. `partial_lines`: what the command got so far."""


class AtError(ModemError):
    """A final `ERROR` (or `NO CARRIER`, `BUSY`, `NO ANSWER` ending a dial). `line`: that line."""


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


class ModemSilent(ModemError):
    """The modem answered nothing, even after a PWRKEY power-on: `stage` says where
    ("power_on", "power_cycle", "init", "init_reboots")."""
