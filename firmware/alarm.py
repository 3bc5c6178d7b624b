# The alarm: DESIGN.md "The alarm, step by step".
#
# A trigger writes the alarm to the journal before anything else, then four
# channels run side by side as asyncio tasks sharing the one UART through the
# driver (one AT command in flight at a time):
#   call      read AT+CLCC, then dial the emergency number at once (a police call
#             already up is the alarm's call: followed, never hung up; any other call
#             is hung up first); redial with backoff up to call_retries; a hold while
#             the alarm is open dials again at once if the call has dropped
#   position  serving cell at once, GNSS started, best fix kept
#   data      signed alarm message as soon as the modem can, then positions every
#             track_interval_s, each retried until a 2xx with ok:true
#   sms       AML v1 SMS with the best fix within 20 s, until +CDS says delivered
# Progress goes to the journal, so a reboot resumes the same alarm (same aid).
# The alarm owns its call: when it ends, the call is hung up (docs/firmware.md
# "The alarm's call"), unless a newer alarm has taken the line over.
import asyncio
import time

from micropython import const

import aml
from errors import CallFailed, ModemError
from timing import GOOD_FIX_M
from uplink import Uplink, take_commands

IDLE = "idle"
OPEN = "open"
ACKNOWLEDGED = "acknowledged"
ENDED = "ended"
_MOVES = ((IDLE, OPEN), (OPEN, ACKNOWLEDGED), (OPEN, ENDED), (ACKNOWLEDGED, ENDED))

_CDS_DELIVERED = const(0)
_CDS_TRYING_MIN = const(32)  # 32..63: the SMSC keeps trying, not final
_CDS_TRYING_MAX = const(63)

# A move outside _MOVES (a bug): a class of its own would cost ~200 bytes of heap.
IllegalTransition = ValueError

_UP = ("dialing", "alerting", "active")


def new_aid():
    import os
    try:
        raw = os.urandom(4)
    except (AttributeError, OSError, NotImplementedError):
        import random
        raw = bytes(random.getrandbits(8) for _ in range(4))
    return "%02x%02x%02x%02x" % (raw[0], raw[1], raw[2], raw[3])


class Alarm:
    owner = None  # the newest alarm: the one whose call the line is

    def __init__(self, dev, aid, at, seq, progress, resumed):
        self.dev = dev
        self.aid = aid
        self.at = at
        self._first_seq = seq
        self.p = progress           # journaled progress (call, calls, sms, mr, help, acked)
        self.resumed = resumed
        self.state = IDLE
        self.call_state = "idle"
        self.sms_state = "delivered" if progress.get("sms") == "delivered" else (
            "sent" if progress.get("sms") == "sent" else "pending")
        self.fix = None             # best fix of this alarm
        self.server_state = None
        self._t0 = time.ticks_ms()  # trigger (or resume) time
        self._ended = asyncio.Event()
        self._cell_ready = asyncio.Event()
        self._good_fix = asyncio.Event()   # a GNSS fix within GOOD_FIX_M
        self._gnss_fix = asyncio.Event()   # any GNSS fix
        self._gnss_sent = asyncio.Event()  # a message with a GNSS fix reached the server
        self._snap_method = None
        self._aml_had_gnss = progress.get("smsg") == 1
        self._position_due = asyncio.Event()
        self._call_events = []
        self._call_event = asyncio.Event()
        self._reports = {}
        self._report_event = asyncio.Event()
        self._tasks = []
        self._uplink = Uplink(dev)
        self._redial = asyncio.Event()  # a re-press (or a call-back): look at the line again
        self._dialled = asyncio.Event()  # the first ATD went (or the police were already on)
        self.end_reason = None
        Alarm.owner = self  # the alarm whose call the line is (an older one leaves it up)
        last = dev.last_fix
        if last is not None and at is not None and last.get("t") and at - last["t"] < 300:
            self.fix = last  # a recent GNSS fix is better than the cell

    # -- creation -----------------------------------------------------------------
    @classmethod
    def trigger(cls, dev):
        """The button was held: journal first, then everything else."""
        aid = new_aid()
        at = dev.clock.now()
        try:
            seq = dev.journal.next_seq()
        except Exception as e:  # noqa: BLE001 - no number: the data channel draws one later
            dev.log.error("seq", e)
            seq = None
        dev.journal.open_alarm(aid, at, seq)
        alarm = cls(dev, aid, at, seq, {}, False)
        alarm.transition(OPEN)
        dev.log.event("ALARM", aid=aid, seq=seq, resumed=0)
        return alarm

    @classmethod
    def resume(cls, dev, rec):
        """An alarm the journal says is unfinished: the same alarm goes on."""
        alarm = cls(dev, rec["aid"], rec.get("at"), None, dict(rec.get("p") or {}), True)
        alarm.transition(OPEN)
        if alarm.p.get("help"):
            alarm.transition(ACKNOWLEDGED)  # the vibration was already given
        dev.log.event("ALARM", aid=alarm.aid, seq=rec.get("seq"), resumed=1)
        return alarm

    # -- state --------------------------------------------------------------------
    def transition(self, new):
        if (self.state, new) not in _MOVES:
            raise IllegalTransition("%s -> %s" % (self.state, new))
        self.state = new

    @property
    def is_open(self):
        return self.state in (OPEN, ACKNOWLEDGED)

    def repress(self):
        """A hold while this alarm is open: no second alarm. The server hears of it at
        once (ch.press); if the call has dropped it is dialled again at once."""
        n = self.p.get("press", 1) + 1
        self._progress("press", n)
        redial = self.dev.modem.call_state not in _UP
        self.dev.log.event("BUTTON", state="held", alarm="already_open", aid=self.aid, press=n,
                           redial=int(redial))
        if redial:
            self._dial_again()
        else:
            asyncio.create_task(self._check_call())
        self._position_due.set()

    async def _check_call(self):
        """A re-press while the driver says a call is up. An end line missed while the
        modem was silent would leave it saying so for good, and she would never be put
        through again (campaign replay silent_modem_hid_the_police_hangup): AT+CLCC, and
        with no call up the call is lost and dialled again at once."""
        try:
            calls = await self.dev.modem.call_list(500)
        except ModemError as e:
            self.dev.log.error("clcc", e)
            return
        if self.is_open and not [c for c in calls if c[2] in (0, 2, 3)]:
            self.dev.modem.call_lost()  # the follower hears "ended lost": not done
            self._dial_again()

    def _dial_again(self):
        """She held the button and no call is up: dial 17 again at once, even when a call
        was answered before (a resumed alarm, a police call-back the police ended: campaign
        replay callback_ended_then_hold_never_redialled)."""
        if self.p.get("call") == "done":
            self._progress("call", "again")
        self._redial.set()

    def end(self, reason):
        if not self.is_open:
            return
        self.transition(ENDED)
        self.end_reason = reason
        self.end_t = None
        try:
            # with the time, when known: the police call-back window outlives a reboot
            self.end_t = self.dev.clock.now()
            self.dev.journal.end_alarm(self.aid, reason, self.end_t)
        except Exception as e:  # noqa: BLE001 - ended in RAM: it must end for real (call, tasks)
            self.dev.log.error("alarm_end", e)
        self.dev.log.event("ALARM_END", aid=self.aid, reason=reason)
        self._ended.set()

    def _progress(self, key, value):
        self.p[key] = value
        self.dev.journal.progress(self.aid, key, value)

    # -- modem callbacks (set by the app while this alarm runs) --------------------
    def on_call(self, state, reason=None):
        self._call_events.append((state, reason))
        self._call_event.set()

    def on_reboot(self):
        # the call, if any, died with the modem
        self._call_events.append(("ended", "modem_reboot"))
        self._call_event.set()

    def on_sms_report(self, mr, st):
        self._reports[mr] = st
        self._report_event.set()

    def on_callback(self, state):
        """The police called back and the handset answered (callback.py): `state` is
        "active" (answered) or "ended". The answered call is the voice contact the call
        channel is after: its redials stop (an ATD now would put the police on hold,
        and a resumed alarm does not redial either), and the next data message carries
        ch.call (protocol.md) at once."""
        if state == "active" and self.p.get("call") != "done":
            self._progress("call", "done")
            self._redial.set()  # a call channel waiting out its backoff sees it at once
        self._set_call(state, "callback")
        self._position_due.set()

    def cancel(self):
        """Stop the channels' tasks at once (the app stops: tests, a restart by main.py)."""
        for t in self._tasks:
            t.cancel()

    # -- running ------------------------------------------------------------------
    async def run(self):
        """Run every channel until the alarm ends (closed by the console, or timeout)."""
        if not self.is_open:
            return
        # The call task is created first, so ATD is the first command on the UART.
        for name, coro in (("call", self._call_channel), ("position", self._position_channel),
                           ("data", self._data_channel), ("sms", self._sms_channel),
                           ("timeout", self._timeout)):
            self._tasks.append(asyncio.create_task(self._guard(name, coro)))
        await self._ended.wait()
        for t in self._tasks:
            t.cancel()
        await asyncio.sleep_ms(0)
        await self._hang_up()
        if Alarm.owner is self:
            Alarm.owner = None  # nothing left to own: not kept alive for it
        try:
            await self.dev.modem.gnss_stop()
        except Exception as e:  # noqa: BLE001 - GNSS left on costs battery, not safety
            self.dev.log.error("gnss_stop", e)

    async def _guard(self, name, channel):
        # A bug in one channel must not silence the others: log and start it again.
        while self.is_open:
            try:
                await channel()
                return
            except Exception as e:  # noqa: BLE001 - logged and restarted
                self.dev.log.error(name, e)
                await asyncio.sleep_ms(self.dev.timing.modem_retry_ms)

    # -- call ---------------------------------------------------------------------
    def _set_call(self, state, reason=None):
        self.call_state = state
        if state in ("alerting", "active", "failed"):
            # each step reaches the server's timeline at once: the console shows
            # "sonnerie" while the police phone rings, not a stale "numérotation"
            self._position_due.set()
        if reason is None:
            self.dev.log.event("CALL", state=state)
        else:
            self.dev.log.event("CALL", state=state, reason=reason)

    async def _call_channel(self):
        # Rounds of up to 1 + call_retries dials; between rounds, wait for a re-press.
        if self.p.get("call") == "done":
            self.call_state = "ended"  # resumed: answered and ended before the reboot
        await self.dev.ready.wait()
        while self.is_open:
            self._redial.clear()
            if self.p.get("call") != "done":
                await self._call_round()
            self._dialled.set()
            await self._redial.wait()

    async def _call_round(self):
        dev = self.dev
        retries = dev.cfg["call_retries"]
        left = 1 + retries
        first, cap = dev.timing.call_backoff_ms
        delay = first
        pause = 0
        refused = False
        while self.is_open and self.p.get("call") != "done":
            if pause:
                if await self._pause(pause):
                    left = 1 + retries  # a re-press: at once, with the whole budget again
                    delay = first
                else:
                    delay = min(delay * 2, cap)
            line = await self._line_check()
            if isinstance(line, tuple):  # the police are already on the line
                if await self._follow_call(line):
                    return
                pause = delay
                continue
            if refused and not line:
                refused = False  # refused with nothing to hang up (no network?): back off
                pause = delay
                continue
            if left <= 0:
                break
            left -= 1
            refused = await self._dial()
            if refused is None:
                return
            pause = 0 if refused else delay
        if self.is_open and self.p.get("call") != "done":
            self._set_call("failed", "retries_exhausted")

    async def _pause(self, ms):
        """The backoff; True when a re-press (or a call-back) cut it short."""
        try:
            await asyncio.wait_for_ms(self._redial.wait(), ms)
        except asyncio.TimeoutError:
            return False
        self._redial.clear()
        return True

    async def _dial(self):
        """One ATD. None: answered then ended (done); True: refused by the modem
        (+CME ERROR / ERROR: look at the line and dial again at once); False: failed."""
        dev = self.dev
        n = self.p.get("calls", 0) + 1
        self._call_events = []
        self._call_event.clear()
        self.call_state = "dialing"
        dev.log.event("DIAL", n=dev.cfg["emergency_number"], attempt=n)
        why = None
        try:
            await dev.modem.dial(dev.cfg["emergency_number"])
        except CallFailed as e:
            why = e.reason
        except ModemError as e:
            why = type(e).__name__
        self._progress("calls", n)  # after the ATD: the dial never waits for the flash
        # ATD timed out but the call is going through: follow it
        if why is None or (why == "timeout" and dev.modem.call_state in ("alerting", "active")):
            return None if await self._follow_call() else False
        self._dialled.set()
        self._set_call("failed", "refused" if why == "error" else why)
        return why == "error"

    async def _line_check(self):
        """AT+CLCC before a dial. The alarm's call already up (an outgoing call to the
        emergency number being set up or active, or an active call from a police
        number) -> that call (id, dir, stat, number), to follow: the police are
        listening. Any other call (a stranger, a stale or held leg) is hung up
        (AT+CHUP ends them all) -> how many there were (0: the line was free)."""
        dev = self.dev
        modem = dev.modem
        try:
            calls = await modem.call_list(500)  # lost: dial after 0.5 s, not 5
        except ModemError as e:
            dev.log.error("clcc", e)
            return 0
        n = dev.cfg["emergency_number"]
        police = dev.cfg["police_numbers"]  # [emergency_number] by default, safe mode too
        for c in calls:
            if (c[1] == 0 and c[2] in (0, 2, 3) and c[3] == n) or (
                    c[1] == 1 and c[2] == 0 and c[3] in police):
                return c
        if calls:
            dev.log.event("HANGUP", why="line_busy", n=len(calls))
            try:
                await modem.hangup()
            except ModemError as e:
                dev.log.error("hangup", e)
        return len(calls)

    async def _hang_up(self):
        # The alarm owns its call: it ends with the alarm (docs/firmware.md "The alarm's
        # call"). A ringing call is left to callback.py; a newer alarm keeps the line.
        dev = self.dev
        try:
            for c in await dev.modem.call_list():
                if c[2] < 4 and Alarm.owner is self:  # active, held, dialling, alerting
                    dev.log.event("HANGUP", why="alarm_end")
                    await dev.modem.hangup()
                    return
        except ModemError as e:
            dev.log.error("hangup", e)

    async def _follow_call(self, found=None):
        """Track one call (`found`: a call AT+CLCC showed). True when it was answered
        and then ended (done)."""
        dev = self.dev
        answered = False
        self._dialled.set()
        if found is not None:
            self._call_events = []
            self._call_event.clear()
            if found[1] == 1:  # a police call-back, answered: callback.py follows it
                self._progress("call", "done")
                return True
            dev.modem.adopt(found)
            answered = found[2] == 0
            self._set_call(dev.modem.call_state, "adopted")
            if answered:
                self._progress("call", "active")
        deadline = dev.timing.call_guard_ms
        start = time.ticks_ms()
        while True:
            while not self._call_events:
                self._call_event.clear()
                left = deadline - time.ticks_diff(time.ticks_ms(), start)
                if answered:
                    await self._call_event.wait()
                    continue
                if left <= 0:
                    self._set_call("failed", "no_outcome")
                    try:
                        await dev.modem.hangup()
                    except ModemError as e:
                        dev.log.error("hangup", e)
                    return False
                try:
                    await asyncio.wait_for_ms(self._call_event.wait(), left)
                except asyncio.TimeoutError:
                    pass
            state, reason = self._call_events.pop(0)
            if state == "alerting" and not answered:
                self._set_call("alerting")
            elif state == "active" and not answered:
                answered = True
                self._set_call("active")
                self._progress("call", "active")
                # the driver turns the speaker down itself as soon as the call is up
            elif state in ("ended", "failed", "idle"):
                if answered and reason not in ("reboot", "modem_reboot", "lost"):
                    self._set_call("ended", reason)
                    self._progress("call", "done")
                    return True
                self._set_call("failed", reason or "not_answered")
                return False

    # -- position -----------------------------------------------------------------
    def _take_fix(self, fix):
        """A GNSS fix from the driver ({"lat","lon","acc","t",...})."""
        first = self.fix is None or self.fix.get("m") != "G"
        g = {"m": "G", "lat": fix["lat"], "lon": fix["lon"], "acc": max(5, int(fix.get("acc") or 5)),
             "t": fix.get("t") or self.dev.clock.now()}
        self.fix = g
        self.dev.last_fix = g
        if first:
            self.dev.log.event("FIX", m="G", lat="%.6f" % g["lat"], lon="%.6f" % g["lon"], acc=g["acc"])
            self._position_due.set()  # the first GNSS position goes to the server at once
        self._gnss_fix.set()
        if g["acc"] <= GOOD_FIX_M:
            self._good_fix.set()

    async def _refresh_cell(self):
        dev = self.dev
        try:
            cell = await dev.modem.serving_cell()
        except ModemError as e:
            dev.log.error("serving_cell", e)
            return
        if cell is not None:
            first = dev.cell is None or self.fix is None
            dev.cell = cell
            if self.fix is None:
                self.fix = {"m": "C"}
            if first:
                dev.log.event("FIX", m="C", rat=cell.get("rat"), ci=cell.get("ci"))

    async def _refresh_status(self):
        dev = self.dev
        try:
            dev.bat = await dev.modem.battery_mv()
            dev.csq = await dev.modem.signal()
        except ModemError as e:
            dev.log.error("status", e)

    async def _position_channel(self):
        dev = self.dev
        t = dev.timing
        await dev.ready.wait()
        await self._dialled.wait()  # AT+CLCC then ATD first: nothing between them (below too)
        await self._refresh_cell()
        self._cell_ready.set()
        try:
            await dev.modem.gnss_start()
        except ModemError as e:
            dev.log.error("gnss_start", e)
        await self._refresh_status()
        track_ms = t.s(dev.cfg["track_interval_s"])
        last_refresh = time.ticks_ms()
        while self.is_open:
            try:
                fix = await dev.modem.gnss_fix()
            except ModemError as e:
                dev.log.error("gnss_fix", e)
                fix = None
            if fix is not None and fix.get("lat") is not None:
                self._take_fix(fix)
            if time.ticks_diff(time.ticks_ms(), last_refresh) >= track_ms:
                last_refresh = time.ticks_ms()
                await self._refresh_cell()
                await self._refresh_status()
            has_g = self.fix is not None and self.fix.get("m") == "G"
            await asyncio.sleep_ms(t.gnss_track_poll_ms if has_g else t.gnss_poll_ms)

    # -- data ---------------------------------------------------------------------
    def _snapshot(self):
        dev = self.dev
        self._snap_method = self.fix.get("m") if self.fix else None
        return {"fix": self.fix, "cell": dev.cell, "bat": dev.bat, "csq": dev.csq,
                "aid": self.aid, "at": self.at, "call": self.call_state, "sms": self.sms_state,
                "cmd": dev.last_cmd, "press": self.p.get("press")}

    async def _data_channel(self):
        dev = self.dev
        if dev.safe:
            return  # no server identity in safe mode: call and AML SMS only
        await dev.ready.wait()
        await self._dialled.wait()
        try:
            await asyncio.wait_for_ms(self._cell_ready.wait(), dev.timing.cell_wait_ms)
        except asyncio.TimeoutError:
            pass
        mtype = "alarm"
        track_ms = dev.timing.s(dev.cfg["track_interval_s"])
        while self.is_open:
            self._position_due.clear()
            answer = await self._uplink.deliver(mtype, self._snapshot, lambda: self.is_open,
                                                dev.timing.data_backoff_ms, self._first_seq)
            self._first_seq = None
            if answer is None:
                return
            if self._snap_method == "G":
                self._gnss_sent.set()
            first = mtype == "alarm"
            mtype = "position"
            self._handle_answer(answer, first)
            if not self.is_open:
                return
            try:
                await asyncio.wait_for_ms(self._position_due.wait(), track_ms)
            except asyncio.TimeoutError:
                pass

    def _handle_answer(self, answer, first):
        dev = self.dev
        alarm = answer.get("alarm")
        state = alarm.get("state") if isinstance(alarm, dict) else None
        if state is not None and (first or state != self.server_state):
            dev.log.event("ACKED", aid=self.aid, state=state)
        self.server_state = state
        if not self.p.get("acked"):
            self._progress("acked", 1)
        if state == "acknowledged" or (state == "closed" and not self.p.get("help")):
            self._help_is_coming()
        if take_commands(dev, answer):
            self._position_due.set()
        if state == "closed":
            self.end("closed")

    def _help_is_coming(self):
        if self.state == OPEN:
            self.transition(ACKNOWLEDGED)
        if self.p.get("help"):
            return
        self._progress("help", 1)  # journal first: the pattern is given once, ever
        asyncio.create_task(self.dev.vibrator.play("help"))

    # -- AML SMS ------------------------------------------------------------------
    async def _sms_channel(self):
        dev = self.dev
        number = dev.cfg["sms_number"]
        if not number:
            return
        t = dev.timing
        await dev.ready.wait()
        # a slow AT+CLCC (a silent modem: 5 s) must not let the SMS's 60 s CMGS in first
        await self._dialled.wait()
        if self.sms_state != "delivered":
            left = t.aml_deadline_ms - time.ticks_diff(time.ticks_ms(), self._t0)
            if left > 0 and not self.resumed:
                try:
                    await asyncio.wait_for_ms(self._good_fix.wait(), left)
                    await self._gnss_position_first(
                        t.aml_deadline_ms - time.ticks_diff(time.ticks_ms(), self._t0))
                except asyncio.TimeoutError:
                    pass
            mr = self.p.get("mr") if self.sms_state == "sent" else None
            await self._aml_until_delivered(number, mr)
        if self.p.get("smsg") or not self.is_open:
            return
        # The AML went without a GNSS position (no fix by the deadline): one more, once,
        # as soon as GNSS has one, so a receiver that only gets SMS still finds her.
        await self._gnss_fix.wait()
        await self._gnss_position_first()
        await self._aml_until_delivered(number, None)

    async def _gnss_position_first(self, limit_ms=None):
        # The position message (straight to the police console, one short POST) goes
        # before the SMS, whose submission holds the UART for 1-3 s; never long, and
        # never past the AML deadline.
        wait_ms = self.dev.timing.sms_yield_ms
        if limit_ms is not None:
            wait_ms = min(wait_ms, limit_ms)
        if self.dev.safe or wait_ms <= 0:
            return
        try:
            await asyncio.wait_for_ms(self._gnss_sent.wait(), wait_ms)
        except asyncio.TimeoutError:
            pass

    async def _aml_until_delivered(self, number, mr):
        dev = self.dev
        first, cap = dev.timing.sms_backoff_ms
        delay = first
        while self.is_open:
            if mr is None:
                mr = await self._send_aml(number)
            if mr is not None:
                st = await self._wait_report(mr)
                if st == _CDS_DELIVERED:
                    self.sms_state = "delivered"
                    self._progress("sms", "delivered")
                    if self._aml_had_gnss:
                        self._progress("smsg", 1)
                    dev.log.event("SMS", state="delivered", mr=mr)
                    return
                self.sms_state = "failed"
                dev.log.event("SMS", state="failed", mr=mr, st=st if st is not None else "no_report")
                mr = None
            await asyncio.sleep_ms(delay)
            delay = min(delay * 2, cap)

    async def _send_aml(self, number):
        dev = self.dev
        cell = dev.cell or {}
        try:
            text = aml.encode(self.fix, dev.imei or "", cell.get("mcc"), cell.get("mnc"),
                              dev.clock.now())
        except aml.AmlError as e:
            text = None
            dev.log.error("aml", e)
        if text is None:
            if dev.imei is None:
                try:
                    dev.imei, dev.iccid = await dev.modem.identity()
                except ModemError as e:
                    dev.log.error("identity", e)
            return None
        try:
            mr = await dev.modem.send_sms(number, text)
        except ModemError as e:
            self.sms_state = "failed"
            dev.log.event("SMS", state="failed", mr="none", what=type(e).__name__)
            return None
        self.sms_state = "sent"
        self._aml_had_gnss = self.fix is not None and self.fix.get("m") == "G"
        self._reports.pop(mr, None)
        self._progress("mr", mr)
        self._progress("sms", "sent")
        dev.log.event("SMS", state="sent", mr=mr)
        return mr

    async def _wait_report(self, mr):
        start = time.ticks_ms()
        limit = self.dev.timing.sms_report_ms
        while True:
            st = self._reports.get(mr)
            if st is not None and not (_CDS_TRYING_MIN <= st <= _CDS_TRYING_MAX):
                return st
            left = limit - time.ticks_diff(time.ticks_ms(), start)
            if left <= 0:
                return None
            self._report_event.clear()
            try:
                await asyncio.wait_for_ms(self._report_event.wait(), left)
            except asyncio.TimeoutError:
                pass

    # -- end ----------------------------------------------------------------------
    async def _timeout(self):
        dev = self.dev
        limit_s = dev.cfg["alarm_timeout_s"]
        now = dev.clock.now()
        if self.resumed and self.at is not None and now is not None:
            limit_s = max(0, limit_s - (now - self.at))
        await asyncio.sleep_ms(dev.timing.s(limit_s))
        self.end("timeout")
