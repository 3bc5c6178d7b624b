# The SIM7600 driver's once-per-boot and seldom calls (start-up, power cycle and
# re-initialisation after a reboot, SIM state, registration wait, identity, network
# clock, received SMS), apart from sim7600.py so that their code is
# in the heap only while one runs: Sim7600's methods of the same names load this
# module for the call and drop it (sim7600._boot). `m` is the Sim7600 driver.
import asyncio
import sys

from atparse import _body, _safe
from errors import AtError, AtTimeout, CmeError, ModemError, ModemRebooted, ModemSilent

# After RDY; failures are logged and skipped (the modem stays usable without them).
_INIT = ("ATE0", "AT+CMEE=2", "AT+CLIP=1", "AT+CLCC=1", "AT+CVHU=0", "AT+CLVL=0",
         "AT+CTZU=1", "AT+CREG=2", "AT+CEREG=2")


def _rare():
    # The parsers of identity, clock and received SMS (atparse_rare.py), loaded for the
    # call: not on the re-initialisation path, which runs mid-alarm after a reboot,
    # when the heap is fullest.
    import atparse_rare
    sys.modules.pop("atparse_rare", None)
    return atparse_rare


@_safe
def parse_cpin(line):
    """`+CPIN: READY` -> "READY"; also "SIM PIN", "SIM PUK", ... as the modem says it."""
    v = _body(line, "+CPIN:")
    return v if v else None


async def start(m):
    """Power on if silent, wait RDY, initialise. Raises ModemSilent."""
    m._at.start()
    m._starting = True
    try:
        if not await _answers(m, 1):  # one short probe: a silent modem is usually off
            rdy = m._at.urc_waiter("RDY")
            m._log.event("MODEM_POWER", action="on")
            await _pulse(m, m.pwrkey_on_ms)
            await _wait_boot(m, rdy, "power_on")
        await _init(m)
    finally:
        m._starting = False


async def power_cycle(m):
    """PWRKEY off pulse (>= 2.5 s), then on pulse, wait RDY, re-initialise."""
    m._starting = True
    try:
        m._log.event("MODEM_POWER", action="cycle")
        rdy = m._at.urc_waiter("RDY")  # before the off pulse: an off modem boots on it
        await _pulse(m, m.pwrkey_off_ms)
        await asyncio.sleep_ms(m.off_wait_ms)
        await _pulse(m, m.pwrkey_on_ms)
        m._reset_state("power_cycle")
        await _wait_boot(m, rdy, "power_cycle")
        await _init(m)
    finally:
        m._starting = False


async def reinit(m):
    # After an unexpected RDY (Sim7600._on_rdy).
    try:
        await _init(m)
    except ModemError as e:
        m._log.error("modem_reinit", e)


async def _pulse(m, ms):
    m._board.pwrkey(True)
    try:
        await asyncio.sleep_ms(ms)
    finally:
        m._board.pwrkey(False)


async def _wait_boot(m, rdy, stage):
    try:
        await rdy.wait(m.rdy_timeout_ms)
    except AtTimeout:
        # No RDY seen (it may have come before we listened): is it answering anyway?
        if not await _answers(m, 2):
            raise ModemSilent(stage)


async def _answers(m, tries):
    for _ in range(tries):
        try:
            await m._at.send("AT", timeout_ms=m.probe_ms)
            return True
        except AtTimeout:
            pass
        except ModemRebooted:
            return True
        except AtError:
            return True
    return False


async def _init(m):
    for _ in range(3):
        try:
            for cmd in _INIT:
                await m._try(cmd)
            await m._sms_init()
            await sim_status(m)
            return
        except ModemRebooted:
            continue  # rebooted during init: start the list again
        except AtTimeout:
            raise ModemSilent("init")
    raise ModemSilent("init_reboots")


async def sim_status(m):
    """AT+CPIN? -> "READY", "SIM PIN", "SIM PUK", ... or "absent" (+CME ERROR 10).

    Kept in `modem.sim`; anything but READY is logged (no SMS, no data, and only
    emergency numbers can be called).
    """
    v = None
    try:
        for line in await m._at.send("AT+CPIN?"):
            if isinstance(line, str) and v is None:
                v = parse_cpin(line)
    except CmeError as e:
        v = "absent" if e.code in (10, "SIM not inserted") else str(e.code)
    except AtError:
        pass
    m.sim = v or "unknown"
    if m.sim != "READY":
        m._log.error("sim", m.sim)
    return m.sim


async def wait_registered(m, timeout_ms):
    """Poll CREG/CEREG until registered (home or roaming). -> bool."""
    waited = 0
    while True:
        for cmd in ("AT+CEREG?", "AT+CREG?"):
            try:
                for line in await m._at.send(cmd):
                    m._on_registration_line(line)
            except AtError as e:
                m._log.error("registration", e.line)
        if m.registered:
            return True
        if waited >= timeout_ms:
            return False
        await asyncio.sleep_ms(m.poll_ms)
        waited += m.poll_ms


async def identity(m):
    """-> (imei, iccid); None for a part the modem does not give."""
    imei = iccid = None
    rare = _rare()
    try:
        for line in await m._at.send("AT+CGSN"):
            imei = imei or rare.parse_imei(line)
    except AtError as e:
        m._log.error("imei", e.line)
    try:
        for line in await m._at.send("AT+CICCID"):
            iccid = iccid or rare.parse_iccid(line)
    except AtError as e:
        m._log.error("iccid", e.line)
    return (imei, iccid)


async def network_time(m):
    """Unix seconds UTC from the network clock, or None if never set."""
    try:
        lines = await m._at.send("AT+CCLK?")
    except AtError as e:
        m._log.error("cclk", e.line)
        return None
    for line in lines:
        if isinstance(line, str) and line.startswith("+CCLK:"):
            return _rare().parse_cclk(line)
    return None


async def read_sms(m, index):
    """AT+CMGR=<index> -> (sender, text), or None for an empty slot.

    A text line that starts like a URC ("RING", "+CMTI: ...") goes to the URC
    handlers instead: this is for short command texts, not arbitrary content.
    """
    lines = await m._at.send("AT+CMGR=%d" % index, timeout_ms=10000)
    for i in range(len(lines)):
        line = lines[i]
        if isinstance(line, str) and line.startswith("+CMGR:"):
            head = _rare().parse_cmgr(line)
            if head is None:
                m._log.error("cmgr", "bad_line")
                return None
            rest = [x for x in lines[i + 1:] if isinstance(x, str)]
            return (head[1], "\n".join(rest))
    return None


async def delete_sms(m, index):
    await m._at.send("AT+CMGD=%d" % index)
