# SIM7600 driver (docs/interfaces.md §3, docs/firmware-modem.md).
# Protocol only: it sends commands, parses answers and tracks call/registration state
# from URCs. What to retry and when is the alarm layer's decision.
import asyncio
import time

from micropython import const

from tgd.modem import atparse
from tgd.modem.at import sms_payload
from tgd.modem.errors import (AtError, AtTimeout, CallFailed, CmeError, ModemError, ModemRebooted,
                    ModemSilent, ProtocolError)

_HTTP_CMD_MS = const(10000)
_SMS_MS = const(60000)
_HTTP_READ_MAX = const(4096)
_END_GRACE_MS = const(300)  # after "+CLCC: ...,6": the BUSY / NO ANSWER that says why comes next

_REINIT_RETRY_MS = const(200)  # a re-initialisation that ran out of heap tries again
_DTR_WAKE_MS = const(20)  # the modem listens 20 ms after DTR falls (not scaled: a physical delay)
# SMS set-up; may fail until "SMS DONE", so send_sms repeats it until it succeeded once.
# After RDY; failures are logged and skipped (the modem stays usable without them).
_INIT = ("ATE0", "AT+CMEE=2", "AT+CLIP=1", "AT+CLCC=1", "AT+CVHU=0", "AT+CLVL=0",
         "AT+CTZU=1", "AT+CREG=2", "AT+CEREG=2")
_SMS_INIT = ("AT+CMGF=1", 'AT+CSCS="GSM"', "AT+CSMP=49,167,0,0", "AT+CNMI=2,1,0,1,0")

_URCS = ("+CLCC:", "VOICE CALL:", "NO CARRIER", "BUSY", "NO ANSWER", "+CDS:", "+CMTI:", "+CREG:",
         "+CEREG:", "RING")
_CLCC_STATES = {2: "dialing", 3: "alerting", 0: "active"}
_END_REASONS = {"NO CARRIER": "no_carrier", "BUSY": "busy", "NO ANSWER": "no_answer",
                "NO DIALTONE": "no_carrier"}


def _check_number(number):
    if not number or len(number) > 20:
        return False
    for i in range(len(number)):
        c = number[i]
        if not ("0" <= c <= "9" or c in "*#" or (c == "+" and i == 0)):
            return False
    return True


def _check_quotable(text, what):
    # A value inside an AT string parameter: no quote, no line end.
    for c in ('"', "\r", "\n"):
        if c in text:
            raise ValueError(what)


class Sim7600:
    # Timings as class attributes so that a test (or a board) can change them.
    pwrkey_on_ms = 500  # >= 100 ms switches the modem on
    pwrkey_off_ms = 3000  # >= 2.5 s switches it off
    off_wait_ms = 2000  # between switching off and on again
    rdy_timeout_ms = 20000  # RDY comes 11-12 s after power-on
    poll_ms = 1000  # registration polling period
    probe_ms = 600  # how long an "AT" waits for OK when checking that the modem is on
    dtr_idle_ms = 1000  # no exchange for this long: DTR high (the app sets its scaled value)
    apn = ""  # packet data APN (config "apn", set by the app); "" keeps the modem's default

    def __init__(self, at, board, log):
        self.at = at
        self._board = board
        self._log = log
        self.call_state = "idle"
        self.registered = False
        self.sim = None  # what AT+CPIN? said at the last start-up
        self._reg = {}  # "+CREG" / "+CEREG" -> registered
        self._call_active_seen = False
        self._hanging_up = False
        self._call_number = 0  # which dial the URCs belong to
        self._call_id = None  # the +CLCC id of the call followed (None: not known yet)
        self._foreign_ends = 0  # other calls' ends seen in +CLCC: their END/NO CARRIER is not ours
        self._sms_ready = False
        self._starting = False
        self._tasks = []
        # DTR, in one place: low (modem awake) from the first command until the AT engine
        # has been idle dtr_idle_ms, then high (with CSCLK=1 the modem sleeps 15-20 s later).
        self._dtr_low_at = None  # ticks DTR went low; None: high (or never driven)
        self._last_use = 0
        self._hold = False  # stay_awake(True): an alarm is open, DTR stays low
        self._dtr_task = None
        self._csclk = False  # AT+CSCLK=1 sent since the modem's last (re)start
        self.on_call = None  # cb(state, reason)
        self.on_sms_report = None  # cb(mr, st)
        self.on_sms = None  # cb(index)
        self.on_reboot = None  # cb()
        self.on_silent = None  # cb(n): n commands in a row got no answer (Device power-cycles)
        self.on_registration = None  # cb(registered)
        at.on_reboot = self._on_rdy
        at.on_silent = self._on_silent
        at.wake = self._wake
        for prefix in _URCS:
            at.on_urc(prefix, self._on_urc)

    # ---- start-up and recovery -------------------------------------------------

    async def start(self):
        """Power on if silent, wait RDY, initialise. Raises ModemSilent."""
        self.at.start()
        self._starting = True
        try:
            if not await self._answers(1):  # one short probe: a silent modem is usually off
                rdy = self.at.urc_waiter("RDY")
                self._log.event("MODEM_POWER", action="on")
                await self._pulse(self.pwrkey_on_ms)
                await self._wait_boot(rdy, "power_on")
            await self._init()
        finally:
            self._starting = False

    async def power_cycle(self):
        """PWRKEY off pulse (>= 2.5 s), then on pulse, wait RDY, re-initialise."""
        self._starting = True
        try:
            self._log.event("MODEM_POWER", action="cycle")
            rdy = self.at.urc_waiter("RDY")  # before the off pulse: an off modem boots on it
            await self._pulse(self.pwrkey_off_ms)
            await asyncio.sleep_ms(self.off_wait_ms)
            await self._pulse(self.pwrkey_on_ms)
            self._reset_state("power_cycle")
            await self._wait_boot(rdy, "power_cycle")
            await self._init()
        finally:
            self._starting = False

    async def _pulse(self, ms):
        self._board.pwrkey(True)
        try:
            await asyncio.sleep_ms(ms)
        finally:
            self._board.pwrkey(False)

    async def _wait_boot(self, rdy, stage):
        try:
            await rdy.wait(self.rdy_timeout_ms)
        except AtTimeout:
            # No RDY seen (it may have come before we listened): is it answering anyway?
            if not await self._answers(2):
                raise ModemSilent(stage)

    async def _answers(self, tries):
        for _ in range(tries):
            try:
                await self.at.send("AT", timeout_ms=self.probe_ms)
                return True
            except AtTimeout:
                pass
            except ModemRebooted:
                return True
            except AtError:
                return True
        return False

    async def _init(self):
        for _ in range(3):
            try:
                for cmd in _INIT:
                    await self._try(cmd)
                if self.apn:  # PDP context 1: without the network's APN no HTTP nor MQTT
                    await self._try('AT+CGDCONT=1,"IP","%s"' % self.apn)
                await self._sms_init()
                await self.sim_status()
                return
            except ModemRebooted:
                continue  # rebooted during init: start the list again
            except AtTimeout:
                raise ModemSilent("init")
        raise ModemSilent("init_reboots")

    async def _try(self, cmd):
        # A set-up command whose refusal is logged and skipped.
        try:
            await self.at.send(cmd)
            return True
        except AtError as e:
            self._log.error("modem_init", "%s:%s" % (cmd, e.line))
            return False

    async def _sms_init(self):
        ok = True
        for cmd in _SMS_INIT:
            ok = await self._try(cmd) and ok
        self._sms_ready = ok

    def _on_rdy(self):
        if self._starting:
            return
        self._log.event("MODEM_REBOOT")
        self._reset_state("reboot")
        self._spawn(self._reinit())
        if self.on_reboot is not None:
            self.on_reboot()

    def _on_silent(self, n):
        # Not while starting or power-cycling: that probes a modem that may be off.
        if self.on_silent is not None and not self._starting:
            self.on_silent(n)

    async def _reinit(self):
        # After an unexpected RDY, often mid-alarm when the heap is fullest: a MemoryError
        # is waited out, never left as a modem that nobody initialised again (echo on,
        # PDU mode: every SMS refused).
        while True:
            try:
                await self._init()
                return
            except ModemError as e:
                self._log.error("modem_reinit", e)
                return
            except MemoryError as e:
                self._log.error("modem_reinit", e)
                await asyncio.sleep_ms(_REINIT_RETRY_MS)

    def _reset_state(self, reason):
        self._sms_ready = False
        self._csclk = False  # a restarted modem forgot it
        self._reg = {}
        self._set_registered(False)
        self._call_id = None
        self._foreign_ends = 0
        if self.call_state in ("dialing", "alerting", "active"):
            self._set_call("ended", reason)

    def _spawn(self, coro):
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.create_task(coro))

    def deinit(self):
        for t in self._tasks + [self._dtr_task]:
            if t is not None:
                t.cancel()
        self._tasks = []
        self.at.deinit()

    # ---- sleep (DTR) -------------------------------------------------------------

    def prewake(self):
        """DTR low now, without waiting (a press may become an alarm)."""
        self._last_use = time.ticks_ms()
        if self._dtr_low_at is None:
            self._board.dtr(0)
            self._dtr_low_at = self._last_use
            if self._dtr_task is None:
                self._dtr_task = asyncio.create_task(self._dtr_idle())

    async def _wake(self):
        # Before every command (AtEngine.wake): DTR low, then the 20 ms the modem needs.
        self.prewake()
        left = _DTR_WAKE_MS - time.ticks_diff(time.ticks_ms(), self._dtr_low_at)
        if left > 0:
            await asyncio.sleep_ms(left)

    def stay_awake(self, on):
        """True while an alarm is open: DTR stays low, the modem never sleeps."""
        self._hold = on
        if on:
            self.prewake()

    def busy(self):
        """An exchange is pending (command in flight, or an answer awaited)."""
        return self._starting or self.at.busy()

    def _may_sleep(self):
        return not (self._hold or self.busy() or self.call_state in ("dialing", "alerting", "active"))

    async def _dtr_idle(self):
        # Runs while DTR is low; raises it after dtr_idle_ms without an exchange or a byte.
        wait = self.dtr_idle_ms
        try:
            while True:
                await asyncio.sleep_ms(wait)
                now = time.ticks_ms()
                if not self._may_sleep():
                    self._last_use = now
                last = self._last_use
                rx = self.at.last_rx_ms
                if rx is not None and time.ticks_diff(rx, last) > 0:
                    last = rx
                wait = self.dtr_idle_ms - time.ticks_diff(now, last)
                if wait > 0:
                    continue
                if not self._csclk:
                    # The first idle moment after a (re)start, not during it: the alarm
                    # may dial as soon as the modem answers.
                    self._csclk = True
                    try:
                        await self._try("AT+CSCLK=1")  # the modem may sleep while DTR is high
                    except ModemError as e:
                        self._log.error("csclk", e)
                    wait = self.dtr_idle_ms
                else:
                    self._board.dtr(1)
                    self._dtr_low_at = None
                    return
        finally:
            self._dtr_task = None

    # ---- network ---------------------------------------------------------------

    async def sim_status(self):
        """AT+CPIN? -> "READY", "SIM PIN", "SIM PUK", ... or "absent" (+CME ERROR 10).

        Kept in `modem.sim`; anything but READY is logged (no SMS, no data, and only
        emergency numbers can be called).
        """
        v = None
        try:
            for line in await self.at.send("AT+CPIN?"):
                if isinstance(line, str) and v is None:
                    v = atparse.parse_cpin(line)
        except CmeError as e:
            v = "absent" if e.code in (10, "SIM not inserted") else str(e.code)
        except AtError:
            pass
        self.sim = v or "unknown"
        if self.sim != "READY":
            self._log.error("sim", self.sim)
        return self.sim

    async def wait_registered(self, timeout_ms):
        """Poll CREG/CEREG until registered (home or roaming). -> bool."""
        waited = 0
        while True:
            for cmd in ("AT+CEREG?", "AT+CREG?"):
                try:
                    for line in await self.at.send(cmd):
                        self._on_registration_line(line)
                except AtError as e:
                    self._log.error("registration", e.line)
            if self.registered:
                return True
            if waited >= timeout_ms:
                return False
            await asyncio.sleep_ms(self.poll_ms)
            waited += self.poll_ms

    def _on_registration_line(self, line):
        parsed = atparse.parse_registration(line)
        if parsed is None:
            if line.startswith("+C"):
                self._log.error("registration", "bad_line:" + line)
            return
        domain = line[:line.find(":")]
        self._reg[domain] = atparse.is_registered(parsed[0])
        now = False
        for v in self._reg.values():
            now = now or v
        if now and not self.registered:
            self._log.event("REGISTERED", stat=parsed[0], rat=atparse.act_rat(parsed[3], domain))
        self._set_registered(now)

    def _set_registered(self, now):
        if now == self.registered:
            return
        self.registered = now
        if self.on_registration is not None:
            self.on_registration(now)

    async def identity(self):
        """-> (imei, iccid); None for a part the modem does not give."""
        imei = iccid = None
        try:
            for line in await self.at.send("AT+CGSN"):
                imei = imei or atparse.parse_imei(line)
        except AtError as e:
            self._log.error("imei", e.line)
        try:
            for line in await self.at.send("AT+CICCID"):
                iccid = iccid or atparse.parse_iccid(line)
        except AtError as e:
            self._log.error("iccid", e.line)
        return (imei, iccid)

    async def _query(self, cmd, parser, what):
        # The first answer line the parser accepts, or None (logged).
        try:
            lines = await self.at.send(cmd)
        except AtError as e:
            self._log.error(what, e.line)
            return None
        for line in lines:
            if isinstance(line, str):
                v = parser(line)
                if v is not None:
                    return v
        self._log.error(what, "unparsed:%s" % (lines[0] if lines else "nothing"))
        return None

    async def signal(self):
        """AT+CSQ rssi 0..31, 99 unknown."""
        v = await self._query("AT+CSQ", atparse.parse_csq, "csq")
        return 99 if v is None else v[0]

    async def serving_cell(self):
        """The protocol.md `cell` dict, or None (no service or no answer)."""
        cell = await self._query("AT+CPSI?", atparse.parse_cpsi, "cpsi")
        return cell or None

    async def network_time(self):
        """Unix seconds UTC from the network clock, or None if never set."""
        try:
            lines = await self.at.send("AT+CCLK?")
        except AtError as e:
            self._log.error("cclk", e.line)
            return None
        for line in lines:
            if isinstance(line, str) and line.startswith("+CCLK:"):
                return atparse.parse_cclk(line)
        return None

    async def battery_mv(self):
        """Battery voltage in millivolts (AT+CBC), or None."""
        return await self._query("AT+CBC", atparse.parse_cbc, "cbc")

    # ---- GNSS ------------------------------------------------------------------

    async def gnss_on(self):
        """GNSS is powered (AT+CGPS? says 1)."""
        return bool(await self._query("AT+CGPS?", atparse.parse_cgps, "cgps"))

    async def gnss_start(self):
        # AT+CGPS=1 answers ERROR when GNSS is already on: ask first.
        if not await self.gnss_on():
            try:
                await self.at.send("AT+CGPS=1")
            except AtError:
                if not await self.gnss_on():
                    raise

    async def gnss_stop(self):
        if await self.gnss_on():
            await self.at.send("AT+CGPS=0")

    async def gnss_fix(self):
        """{"lat","lon","lat_e6","lon_e6","acc","t","alt"} or None without a fix."""
        try:
            lines = await self.at.send("AT+CGNSSINFO")
            parser = atparse.parse_cgnssinfo
        except AtError:
            lines = await self.at.send("AT+CGPSINFO")
            parser = atparse.parse_cgpsinfo
        for line in lines:
            if isinstance(line, str) and line.startswith("+CG"):
                fix = parser(line)
                if fix is None:
                    self._log.error("gnss", "bad_line")
                return fix or None
        return None

    # ---- voice call ------------------------------------------------------------

    async def dial(self, number):
        """ATD<number>; -> returns when the modem accepted it (progress via on_call).

        Raises CallFailed(reason) at once: "busy", "no_carrier", "no_answer", "error",
        "timeout", "invalid_number".
        """
        if not _check_number(number):
            raise CallFailed("invalid_number")
        self._follow(None, "dialing")
        self._set_call("dialing", None)
        try:
            await self.at.send("ATD%s;" % number, timeout_ms=20000)
        except AtTimeout:
            # The call may still go through: CLCC URCs keep updating call_state.
            raise CallFailed("timeout")
        except ModemRebooted:
            self._set_call("ended", "reboot")
            raise CallFailed("reboot")
        except AtError as e:
            reason = _END_REASONS.get(e.line, "error")
            self._set_call("ended", reason)
            raise CallFailed(reason)

    def _follow(self, call_id, state):
        self._call_active_seen = state == "active"
        self._hanging_up = False
        self._call_number += 1
        self._call_id = call_id  # (an end line still owed by another call stays owed)
        if state != "dialing":
            self.call_state = state

    async def call_list(self, timeout_ms=5000):
        """AT+CLCC -> [(id, dir, stat, number)]: dir 0 outgoing, 1 incoming; stat 0 active,
        1 held, 2 dialing, 3 alerting, 4 incoming, 5 waiting."""
        out = []
        for line in await self.at.send("AT+CLCC", timeout_ms=timeout_ms):
            if isinstance(line, str) and line.startswith("+CLCC:"):
                c = atparse.parse_clcc(line)
                if c is not None:
                    out.append(c)
        return out

    def adopt(self, call):
        """Follow a call AT+CLCC showed (id, dir, stat, number) as if it had been dialled:
        its +CLCC URCs and its end reach on_call."""
        self._follow(call[0], _CLCC_STATES.get(call[2], "active"))

    def call_lost(self):
        """AT+CLCC showed no call while call_state says one is up (its end line was
        missed): the call followed has ended, reason "lost"."""
        if self.call_state in ("dialing", "alerting", "active"):
            self._set_call("ended", "lost")

    async def hangup(self):
        """AT+CHUP (CVHU=0 was set at start-up)."""
        self._hanging_up = True
        await self.at.send("AT+CHUP", timeout_ms=10000)
        if self.call_state != "ended" and self.call_state != "idle":
            self._set_call("ended", "hangup")

    async def discreet_audio(self):
        """Speaker at level 0 and muted; the microphone stays on so the operator hears."""
        for cmd in ("AT+CLVL=0", "AT+VMUTE=1"):
            try:
                await self.at.send(cmd)
            except AtError as e:
                self._log.error("discreet_audio", "%s:%s" % (cmd, e.line))

    def _set_call(self, state, reason):
        if state == self.call_state:
            return
        if self.call_state == "ended" and state != "dialing":
            return  # late URCs of a finished call
        self.call_state = state
        if state == "active" and not self._call_active_seen:
            self._call_active_seen = True
            self._spawn(self.discreet_audio())
        if self.on_call is not None:
            self.on_call(state, reason)

    def _on_urc(self, line):
        # Every URC the driver follows, in one place.
        if line.startswith("+CLCC:"):
            parsed = atparse.parse_clcc(line)
            if parsed is None:
                self._log.error("clcc", "bad_line")
                return
            if (self._call_id is None and parsed[1] == 0 and parsed[2] != 1
                    and self.call_state in ("dialing", "alerting")):
                self._call_id = parsed[0]  # the call just dialled (a held one is stat 1)
            if parsed[0] != self._call_id:
                # Another call (a held leg, a stranger ringing): not ours; its end lines
                # that follow are not ours either.
                if parsed[2] == 6:
                    self._foreign_ends += 1
            else:
                if parsed[2] == 6:
                    if self._call_active_seen or self._hanging_up:
                        self._end_call()
                    else:
                        self._spawn(self._end_call_later(self._call_number))
                elif parsed[2] in _CLCC_STATES:
                    self._set_call(_CLCC_STATES[parsed[2]], None)
        elif line.startswith("VOICE CALL: BEGIN"):
            # Ours only while ours is ringing out: an answered police call-back is
            # callback.py's, and its end (+CLCC of another id) is not ours either; taking
            # its BEGIN left call_state "active" for good, so the modem never slept again
            # and later call-backs were ignored (campaign seed 8, mpt_callback.py).
            if self.call_state in ("dialing", "alerting"):
                self._set_call("active", None)
        elif line.startswith("VOICE CALL: END") or line in _END_REASONS:
            if self._foreign_ends:
                self._foreign_ends -= 1
            elif line[0] == "V":
                self._end_call()
            elif self.call_state in ("dialing", "alerting", "active"):
                self._set_call("ended", _END_REASONS[line])
        elif line.startswith("+CDS:"):
            parsed = atparse.parse_cds(line)
            if parsed is None:
                self._log.error("cds", "bad_line")
            elif self.on_sms_report is not None:
                self.on_sms_report(parsed[0], parsed[1])
        elif line.startswith("+CMTI:"):
            parsed = atparse.parse_cmti(line)
            if parsed is None:
                self._log.error("cmti", "bad_line")
            elif self.on_sms is not None:
                self.on_sms(parsed[1])
        elif line.startswith("+C"):
            self._on_registration_line(line)
        elif line == "RING":
            self._log.event("RING")

    async def _end_call_later(self, call_number):
        # A call that never became active: wait for the result code that gives the reason.
        await asyncio.sleep_ms(_END_GRACE_MS)
        if call_number == self._call_number:
            self._end_call()

    def _end_call(self):
        if self.call_state not in ("dialing", "alerting", "active"):
            return
        if self._hanging_up:
            reason = "hangup"
        elif self._call_active_seen:
            reason = "normal"
        else:
            reason = "no_carrier"
        self._set_call("ended", reason)

    # ---- SMS -------------------------------------------------------------------

    async def send_sms(self, number, text):
        """Text-mode SMS with a delivery report requested. -> message reference (mr)."""
        if not _check_number(number):
            raise ValueError("number")
        if len(text) > 160 or "\x1a" in text or "\x1b" in text:
            raise ValueError("text")
        if not self._sms_ready:
            await self._sms_init()
        lines = await self.at.send('AT+CMGS="%s"' % number, payload=sms_payload(text),
                                    timeout_ms=_SMS_MS)
        for line in lines:
            if isinstance(line, str) and line.startswith("+CMGS:"):
                mr = atparse.parse_cmgs(line)
                if mr is not None:
                    return mr
        raise ProtocolError(lines[0] if lines else "no +CMGS")

    async def read_sms(self, index):
        """AT+CMGR=<index> -> (sender, text), or None for an empty slot.

        A text line that starts like a URC ("RING", "+CMTI: ...") goes to the URC
        handlers instead: this is for short command texts, not arbitrary content.
        """
        lines = await self.at.send("AT+CMGR=%d" % index, timeout_ms=10000)
        for i in range(len(lines)):
            line = lines[i]
            if isinstance(line, str) and line.startswith("+CMGR:"):
                head = atparse.parse_cmgr(line)
                if head is None:
                    self._log.error("cmgr", "bad_line")
                    return None
                rest = [x for x in lines[i + 1:] if isinstance(x, str)]
                return (head[1], "\n".join(rest))
        return None

    async def delete_sms(self, index):
        await self.at.send("AT+CMGD=%d" % index)

    # ---- HTTP ------------------------------------------------------------------

    async def http_post(self, url, body, header, timeout_ms):
        """POST `body` (bytes, JSON) to `url` with one extra `header` line.

        -> (status, answer); a status 600-799 is the modem's own error (no
        network, DNS, timeout...), with an empty answer. `answer`: bytes, or a
        memoryview of the AT engine's buffer (_http_read) that the caller parses at
        once, before its next await. Raises AtTimeout,
        AtError, ModemRebooted for the commands themselves.
        """
        at = self.at
        await self._http_begin(url, header)
        try:
            await self._http_target(url, header)
            await at.send('AT+HTTPPARA="CONTENT","application/json"')
            await at.send("AT+HTTPDATA=%d,%d" % (len(body), _HTTP_CMD_MS), payload=body,
                          timeout_ms=_HTTP_CMD_MS + 5000)
            status, length = await self._http_action(1, timeout_ms)
            answer = b""
            if status < 600 and length > 0:
                try:
                    answer = await self._http_read(min(length, _HTTP_READ_MAX))
                except AtError as e:
                    # The status is known (the server has the message); only its answer is lost.
                    self._log.error("httpread", e.line)
            return (status, answer)
        finally:
            await self._http_term()

    async def http_get(self, url, header, timeout_ms):
        """GET `url` with one extra `header` line (e.g. a Range); the session stays open
        for http_chunk() until http_done(). -> (status, length) as +HTTPACTION says
        (600-799: the modem's own error). tgd/ota/run.py's download, in chunks."""
        await self._http_begin(url, header)
        try:
            await self._http_target(url, header)
            return await self._http_action(0, timeout_ms)
        except Exception:
            await self._http_term()
            raise

    async def http_chunk(self, start, buf):
        """Bytes [start, start+len(buf)) of the open session's answer, received into `buf`
        (AT+HTTPREAD=<start>,<len>; nothing allocated for them). -> how many came."""
        lines = await self.at.send("AT+HTTPREAD=%d,%d" % (start, len(buf)),
                                    expect="+HTTPREAD: 0", timeout_ms=_HTTP_CMD_MS, into=buf)
        n = 0
        for x in lines:
            if isinstance(x, int):
                n += x
            elif not isinstance(x, str):
                raise ProtocolError("raw_block_not_in_buffer")  # longer than asked
        return n

    async def http_done(self):
        await self._http_term()

    async def _http_begin(self, url, header):
        """Check what goes between quotes, then AT+HTTPINIT (a stale session from an
        earlier failure is ended first)."""
        _check_quotable(url, "url")
        if header:
            _check_quotable(header, "header")
        try:
            await self.at.send("AT+HTTPINIT")
        except AtError:
            await self._http_term()
            await self.at.send("AT+HTTPINIT")

    async def _http_target(self, url, header):
        await self.at.send('AT+HTTPPARA="URL","%s"' % url)
        if header:
            await self.at.send('AT+HTTPPARA="USERDATA","%s"' % header)

    async def _http_action(self, method, timeout_ms):
        """AT+HTTPACTION=<method> (0 GET, 1 POST), then its +HTTPACTION answer, which
        comes after the OK. -> (status, length)."""
        done = self.at.urc_waiter("+HTTPACTION:")
        try:
            await self.at.send("AT+HTTPACTION=%d" % method, timeout_ms=_HTTP_CMD_MS)
        except BaseException:  # also MemoryError, a cancel: no waiter left behind
            done.cancel()
            raise
        line = await done.wait(timeout_ms)
        parsed = atparse.parse_httpaction(line)
        if parsed is None:
            raise ProtocolError(line)
        return parsed[1], parsed[2]

    async def _http_read(self, length):
        """The answer's bytes. Up to the AT engine's raw buffer (1 KB): a memoryview of
        that buffer, valid until the next raw block, so parsed at once by the caller
        (uplink/http.py: json.loads takes it as it is). Copied out, a 449-byte answer
        (an update's offer) failed to find its block after an alarm at every heartbeat
        (MemoryError at_rx, 10 s lost each time: CI run of the hold-during-download test)."""
        buf = self.at.raw_buffer
        into = buf if length <= len(buf) else None
        lines = await self.at.send("AT+HTTPREAD=0,%d" % length, expect="+HTTPREAD: 0",
                                    timeout_ms=_HTTP_CMD_MS, into=into)
        n = 0
        for x in lines:
            if isinstance(x, int):
                n += x
        if n:
            return memoryview(buf)[:n]
        parts = [x for x in lines if not isinstance(x, (str, int))]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _http_term(self):
        try:
            await self.at.send("AT+HTTPTERM")
        except AtError:
            pass  # no session to end
        except ModemError as e:
            self._log.error("httpterm", e)
