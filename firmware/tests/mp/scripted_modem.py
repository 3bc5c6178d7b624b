# Helpers to script a SIM7600 for driver tests: the exact answers of sim7600-at.md.
from tgd.modem.at import AtEngine
from scripted_stream import ScriptedStream, line_log
from tgd.modem.sim7600 import _SMS_INIT, Sim7600
from tgd.modem.sim7600 import _INIT

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
BOOT = b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\nSMS DONE\r\n\r\nPB DONE\r\n"


def ok(cmd, *lines):
    """Step: `cmd` answered by `lines` (each framed) then OK."""
    reply = b"".join(b"\r\n" + x + b"\r\n" for x in lines) + OK
    return (cmd.encode() + b"\r", [reply])


def answer(cmd, *replies):
    return (cmd.encode() + b"\r", list(replies))


def init_steps(apn=""):
    pdp = ('AT+CGDCONT=1,"IP","%s"' % apn,) if apn else ()
    return [ok(cmd) for cmd in _INIT + pdp + _SMS_INIT] + [ok("AT+CPIN?", b"+CPIN: READY")]


class RecordingBoard:
    """Board stand-in for the PWRKEY and DTR lines: records every level set."""

    def __init__(self):
        self.pwrkey_levels = []
        self.dtr_levels = []

    def pwrkey(self, pressed):
        self.pwrkey_levels.append(pressed)

    def dtr(self, level):
        self.dtr_levels.append(level)


def make_modem(script=(), lines=None):
    """-> (modem, stream, board, log lines), with short timings for tests."""
    stream = ScriptedStream(script)
    lines = [] if lines is None else lines
    log = line_log(lines)
    board = RecordingBoard()
    modem = Sim7600(AtEngine(stream, log), board, log)
    modem.pwrkey_on_ms = 5
    modem.pwrkey_off_ms = 30
    modem.off_wait_ms = 5
    modem.rdy_timeout_ms = 300
    modem.poll_ms = 10
    modem.probe_ms = 30
    return modem, stream, board, lines


def events(lines, name):
    """The log lines of one event name."""
    return [x for x in lines if x.split(" ")[1] == name]
