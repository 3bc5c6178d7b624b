# A scripted stand-in for the Sim7600 driver (docs/interfaces.md §3), for the
# alarm-layer tests. Each method takes a little time, one at a time (like the one
# UART), and records itself in `calls`.
import asyncio
import json

from tgd.modem.errors import AtTimeout, CallFailed, CmsError

OK_RECEIVED = (200, b'{"ok":true,"seq":0,"alarm":{"aid":"x","state":"received"},"cmds":[]}')


def answer(state="received", cmds=None, status=200, ok=True):
    body = {"ok": ok, "alarm": {"state": state}, "cmds": cmds or []}
    return (status, json.dumps(body).encode())


class FakeModem:
    def __init__(self):
        self.calls = []              # names of the driver methods, in order
        self.dial_outcomes = []      # per attempt: answer | busy | no_carrier | silent | error
        #                              | refused (+CME ERROR: operation not allowed)
        self.line = []               # the modem's calls as AT+CLCC lists them: [id, dir, stat, number]
        self.second_call = "refuse"  # an ATD while a call is up: refuse | hold (emulator's fault)
        self.answer_after_ms = 5
        self.http_script = []        # (status, body) or "timeout", consumed in order
        self.http_default = OK_RECEIVED
        self.sms_script = []         # ok | cms | fail (+CDS st=70) | none (no report) | late
        self.report_after_ms = 5
        self.cell = {"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 4352, "ci": 20513, "sig": -95}
        self.gnss_fix_after = None   # number of gnss_fix calls before a fix, None = never
        self.fix = {"lat": -22.276312, "lon": 166.457181, "acc": 8, "t": 1795678190, "alt": 10}
        self.bat = 3900
        self.csq = 21
        self.posts = []              # (url, body, header)
        self.sms = []                # (number, text)
        self.call_state = "idle"
        self.on_call = None
        self.on_sms_report = None
        self.on_sms = None
        self.on_reboot = None
        self.on_registration = None
        self.hook = None             # called with the method name before it runs
        self._lock = asyncio.Lock()
        self._gnss_polls = 0
        self._mr = 0
        self.started = 0
        self.silent = False          # every command times out until power_cycle()
        self.on_silent = None        # as Sim7600.on_silent: cb(n) at the n-th time-out in a row
        self._silent_n = 0
        self.gnss_stops = 0
        self.power_cycles = 0
        self.order = []              # ("post", fix method) and ("sms", AML pm), in order
        self._mine = None            # the line entry of the call dialled or adopted last
        self.slow_ms = {}            # method name -> how long it takes (default 1 ms)

    async def _cmd(self, name):
        async with self._lock:
            if len(self.calls) < 250:  # bounded (and the list never needs a 4 KB block)
                self.calls.append(name)
            if self.hook is not None:
                self.hook(name)
            await asyncio.sleep_ms(self.slow_ms.get(name, 1))
            if self.silent and name != "power_cycle":
                await asyncio.sleep_ms(5)
                self._silent_n += 1
                if self.on_silent is not None:
                    self.on_silent(self._silent_n)
                raise AtTimeout(name, [])
            self._silent_n = 0

    async def start(self):
        await self._cmd("start")
        self.started += 1

    async def wait_registered(self, timeout_ms):
        await self._cmd("wait_registered")
        return True

    async def identity(self):
        await self._cmd("identity")
        return ("357365093474415", "8968701000000000001")

    async def signal(self):
        await self._cmd("signal")
        return self.csq

    async def serving_cell(self):
        await self._cmd("serving_cell")
        return self.cell

    async def network_time(self):
        await self._cmd("network_time")
        return 1795678200

    async def battery_mv(self):
        await self._cmd("battery_mv")
        return self.bat

    async def gnss_start(self):
        await self._cmd("gnss_start")

    async def gnss_stop(self):
        await self._cmd("gnss_stop")
        self.gnss_stops += 1

    async def gnss_fix(self):
        await self._cmd("gnss_fix")
        self._gnss_polls += 1
        if self.gnss_fix_after is not None and self._gnss_polls > self.gnss_fix_after:
            return dict(self.fix)
        return None

    async def call_list(self, timeout_ms=5000):
        await self._cmd("call_list")
        return [tuple(c) for c in self.line]

    def adopt(self, call):
        self.call_state = {0: "active", 2: "dialing", 3: "alerting"}.get(call[2], "active")
        self._mine = [c for c in self.line if c[0] == call[0]][0]

    async def dial(self, number):
        await self._cmd("dial")
        self.dialled = number
        outcome = self.dial_outcomes.pop(0) if self.dial_outcomes else "answer"
        if self.line:
            if self.second_call == "hold" and len(self.line) == 1 and self.line[0][2] == 0:
                self.line[0][2] = 1  # held; the new call goes ahead
            else:
                outcome = "refused"
        if outcome == "busy":
            raise CallFailed("busy")
        if outcome == "error":
            raise AtTimeout("ATD", [])
        if outcome == "refused":
            raise CallFailed("error")  # the driver's reason for +CME ERROR / ERROR
        self.call_state = "dialing"
        ids = [c[0] for c in self.line]
        self._mine = [1 if 1 not in ids else 2, 0, 2, number]
        self.line.append(self._mine)
        asyncio.create_task(self._progress_call(outcome, self._mine))

    async def _progress_call(self, outcome, call):
        await asyncio.sleep_ms(self.answer_after_ms)
        if outcome == "silent" or call not in self.line:
            return
        call[2] = 3
        self._call("alerting")
        await asyncio.sleep_ms(self.answer_after_ms)
        if call not in self.line:
            return
        if outcome == "no_carrier":
            self.line.remove(call)
            self._call("ended", "no_carrier")
            return
        call[2] = 0
        self._call("active")

    def _call(self, state, reason=None):
        self.call_state = state
        if self.on_call is not None:
            self.on_call(state, reason)

    def police_hang_up_unheard(self):
        """The police end the call, and its end line is lost (the modem was silent)."""
        if self._mine in self.line:
            self.line.remove(self._mine)

    def police_hang_up(self):
        """The police end the alarm's call (the one dialled or adopted last)."""
        if self._mine in self.line:
            self.line.remove(self._mine)
        self._call("ended", "remote")

    def call_lost(self):
        if self.call_state in ("dialing", "alerting", "active"):
            self._call("ended", "lost")

    async def hangup(self):
        await self._cmd("hangup")
        self.line = []  # AT+CHUP ends every call
        if self.call_state in ("dialing", "alerting", "active"):
            self._call("ended", "hangup")
        self.call_state = "ended"

    async def discreet_audio(self):
        await self._cmd("discreet_audio")

    async def send_sms(self, number, text):
        await self._cmd("send_sms")
        outcome = self.sms_script.pop(0) if self.sms_script else "ok"
        if outcome == "cms":
            raise CmsError("+CMS ERROR: 331", 331)
        self.sms.append((number, text))
        if len(self.order) < 60:
            self.order.append(("sms", text.split(";pm=")[1][0]))
        self._mr += 1
        mr = self._mr
        if outcome in ("ok", "fail"):
            asyncio.create_task(self._report(mr, 0 if outcome == "ok" else 70))
        return mr

    async def _report(self, mr, st):
        await asyncio.sleep_ms(self.report_after_ms)
        if self.on_sms_report is not None:
            self.on_sms_report(mr, st)

    async def http_post(self, url, body, header, timeout_ms):
        await self._cmd("http_post")
        if len(self.posts) < 60:
            self.posts.append((url, body, header))
        if len(self.order) < 60:
            self.order.append(("post", json.loads(body)["fix"]["m"]))
        step = self.http_script.pop(0) if self.http_script else self.http_default
        if step == "timeout":
            raise AtTimeout("AT+HTTPACTION=1", [])
        return step

    async def power_cycle(self):
        await self._cmd("power_cycle")
        self.power_cycles += 1
        self.silent = False

    def names(self):
        return [c for c in self.calls]
