"""The campaign's edge: each step of a plan done on an emulated rig.

`StepExecutor.run(step)` presses buttons, plays the police and the operators, takes
networks, the server and handsets down and brings them back, and tells the
`InvariantMonitor` the windows in which it took a channel down on purpose. Everything
it does goes through the rig's own interfaces: the button FIFO, the emulator's faults,
the police endpoint, the server's REST API and the console's own routes (a logged-in
operator with the console's CSRF token), a WSGI middleware for a slow or failing
server, and a real stop of the server's listener for a server that is down.
"""

from __future__ import annotations

import html
import http.cookiejar
import re
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from . import ota_fleet as fleet
from .campaign_invariants import (
    DATA,
    GOOD,
    MODEM,
    OTHER_KEY,
    SELFTEST,
    SERVER,
    SMS,
    TAMPERED,
    VOICE,
    InvariantMonitor,
)
from .campaign_plan import Step
from .emulated import EmulatedRig
from .server_harness import INGEST_PATH

UNKNOWN_CALLER = "+687759999"
CONSOLE_USER = "campaign-operator"


class ServerFaults:
    """WSGI middleware: the device ingest path slow or answering 5xx (set by the executor)."""

    def __init__(self, app):
        self.app = app
        self.delay_s = 0.0
        self.status = 0

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == INGEST_PATH:
            if self.delay_s:
                time.sleep(self.delay_s)
            if self.status:
                start_response(f"{self.status} Injected", [("Content-Type", "application/json"),
                                                            ("Content-Length", "2")])
                return [b"{}"]
        return self.app(environ, start_response)


class ConsoleClient:
    """A police operator in the French console: login form, then the alarm pages' buttons."""

    def __init__(self, base_url: str, username: str, password: str):
        self.base_url = base_url
        self.username = username
        self.password = password
        self._jar = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self._jar))
        self._logged_in = False
        self.failures: list[str] = []

    def _get(self, path: str) -> str:
        with self._opener.open(self.base_url + path, timeout=10) as resp:
            return resp.read().decode("utf-8", "replace")

    def _post(self, path: str, form: dict[str, str]) -> int:
        data = urllib.parse.urlencode(form).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method="POST")
        with self._opener.open(req, timeout=10) as resp:
            return resp.status

    @staticmethod
    def _csrf(page: str) -> str:
        m = re.search(r'name="csrf_token"\s+value="([^"]+)"', page) or re.search(
            r'value="([^"]+)"\s+name="csrf_token"', page)
        if not m:
            raise RuntimeError("no CSRF token in the console page")
        return html.unescape(m.group(1))

    def login(self) -> None:
        for attempt in (1, 2):   # a 5xx: the operator tries again once (the failure is noted)
            token = self._csrf(self._get("/connexion"))
            try:
                self._post("/connexion", {"username": self.username, "password": self.password,
                                          "csrf_token": token})
                break
            except urllib.error.HTTPError as exc:
                if exc.code < 500 or attempt == 2:
                    raise
                self.failures.append(f"console login: HTTP {exc.code}, tried again")
                time.sleep(0.3)
        self._logged_in = True

    def action(self, alarm_id: int, what: str, note: str = "") -> None:
        """what: 'prise-en-charge' (acknowledge) or 'cloture' (close), as the buttons post."""
        if not self._logged_in:
            self.login()
        page = self._get(f"/alarmes/{alarm_id}")
        form = {"csrf_token": self._csrf(page)}
        if note:
            form["note"] = note
        self._post(f"/alarmes/{alarm_id}/{what}", form)


def create_console_operator(rig: EmulatedRig) -> tuple[str, str]:
    from tgd_server import auth, db

    password = secrets.token_urlsafe(18)
    with rig.server.app.app_context(), db.write_session() as session:
        auth.create_user(session, CONSOLE_USER, "operator", password)
    return CONSOLE_USER, password


def factory_version() -> str:
    """FW_VERSION of the firmware tree: what every campaign handset boots first."""
    text = (fleet.FIRMWARE / "tgd" / "device.py").read_text()
    return re.search(r'^FW_VERSION = "([^"]*)"', text, re.M).group(1)


class Releases:
    """The campaign's releases over the air, on the rig's real server (ota_fleet's
    helpers): one release key for the handsets (their `release_pub`), a new version per
    release (1.1.0, 1.2.0...: always above what any handset runs), a roll-out per offer
    with that handset as the canary (`stages [100]`: once it is back on the new version,
    the other handsets are offered it too). Compiled modules are cached (ota_fleet)."""

    CANARY_TIMEOUT_S = 3600    # server time: the campaign's own checks judge the handset
    # A data file of this many bytes in every release, so that the download lasts (a few
    # seconds at fast timing) and the campaign's other events fall during it: the changed
    # modules alone are under 1 KB (a whole .mpy set is ~70 KB).
    PAD = 24_000

    def __init__(self, rig: EmulatedRig, keys: fleet.Keys):
        self.rig = rig
        self.keys = keys
        self.other: fleet.Keys | None = None
        self.trusted = False
        self.count = 0
        major, minor, _ = (int(p) for p in factory_version().split("."))
        self.base = (major, minor)

    def next_version(self) -> str:
        self.count += 1
        return f"{self.base[0]}.{self.base[1] + self.count}.0"

    def make(self, kind: str) -> fleet.Release:
        """Build, sign and upload a release of `kind` (GOOD, SELFTEST, OTHER_KEY,
        TAMPERED); the server must hold it afterwards."""
        server = self.rig.server
        if not self.trusted:
            fleet.trust(server, self.keys)
            self.trusted = True
        version = self.next_version()
        if kind == OTHER_KEY:
            if self.other is None:
                # a compromised server made to trust a key the handsets do not know
                self.other = fleet.Keys()
                fleet.trust(server, self.other)
            release = fleet.make_release(version, self.other, pad=self.PAD)
        elif kind == SELFTEST:
            release = fleet.make_release(version, self.keys, pad=self.PAD,
                                         extra_sources=fleet.failing_selftest_sources())
        else:
            release = fleet.make_release(version, self.keys, pad=self.PAD)
        fleet.upload(server, release)
        if kind == TAMPERED:
            self._tamper(version)
        return release

    def _tamper(self, version: str) -> None:
        """A compromised server changes the stored bundle after the upload (one byte in the
        middle): the signed manifest's SHA-256 no longer matches what it serves."""
        from tgd_server import db
        from tgd_server.models import Release

        with self.rig.server.app.app_context(), db.write_session() as session:
            row = session.get(Release, version)
            data = bytearray(row.bundle)
            data[len(data) // 2] ^= 0x5A
            row.bundle = bytes(data)

    def rollout(self, version: str, canary: str) -> dict:
        """A roll-out of `version` with `canary` first; one under way is paused first (a
        technician replacing it: the server stops it when the new one starts)."""
        server = self.rig.server
        status = fleet.rollout_status(server)
        if status is not None and status["phase"] in ("canary", "staged"):
            server.request("POST", "/api/v1/rollouts/current/pause", server.tech_token,
                           expect=(200,))
        return fleet.start_rollout(server, version, canary, stages=(100,),
                                   canary_timeout_s=self.CANARY_TIMEOUT_S)


class StepExecutor:
    def __init__(self, rig: EmulatedRig, monitor: InvariantMonitor, names: dict[str, str],
                 keys: fleet.Keys | None = None):
        self.rig = rig
        self.monitor = monitor
        self.names = names                       # H1 -> device id
        self.notes: list[str] = []               # steps that found nothing to act on
        self.faults = ServerFaults(None)
        rig.server.wrap(self._wrap)
        user, password = create_console_operator(rig)
        self.console = ConsoleClient(rig.server.base_url, user, password)
        self._aggressor = None
        self._aggressor_at = None
        self._timers: list[threading.Timer] = []
        timing = rig.net.timing
        self.reset_s = timing.reset_s[1] + timing.boot_s[1]
        self.releases = Releases(rig, keys) if keys is not None else None
        self._rollout: tuple[str, str] | None = None    # (version, phase) last seen

    def _wrap(self, app):
        self.faults.app = app
        return self.faults

    # -- helpers ----------------------------------------------------------------------------

    def handset(self, name: str):
        return self.rig.handsets[self.names[name]]

    def wait(self, seconds: float) -> None:
        """Let time pass, probing the modems for pending I7 checks and judging deadlines."""
        end = time.monotonic() + max(0.0, seconds)
        while True:
            now = time.monotonic()
            self.probe_idle(now)
            if now >= end:
                return
            time.sleep(min(0.1, end - now))

    def probe_idle(self, now: float) -> None:
        for name, device in self.names.items():
            if self.monitor.idle_wanted(name) is None:
                continue
            handset = self.rig.handsets[device]
            modem = handset.modem
            callback_up = any(getattr(c, "remote", None).__class__.__name__ == "PoliceCallBack"
                              for c in modem.calls)
            self.monitor.idle_probe(name, now, len(modem.calls), bool(modem.asleep),
                                    callback_up=callback_up)

    def _later(self, delay: float, fn, *args, **kwargs) -> None:
        timer = threading.Timer(delay, fn, args=args, kwargs=kwargs)
        timer.daemon = True
        timer.start()
        self._timers.append(timer)

    def press(self, name: str, hold_s: float) -> None:
        handset = self.handset(name)
        if not handset.running:
            self.notes.append(f"{name}: press while off (nothing happens)")
        handset.press(hold_s)

    def open_alarm_id(self, name: str) -> tuple[int, str] | None:
        """The server's open alarm of this handset (id, aid), or None."""
        device = self.names[name]
        try:
            alarms = self.rig.server.alarms(device, state="open")
        except (urllib.error.URLError, OSError, Exception) as exc:   # noqa: BLE001 - server down
            self.notes.append(f"{name}: console unreachable ({type(exc).__name__})")
            return None
        if not alarms:
            return None
        alarm = max(alarms, key=lambda a: a["id"])
        return alarm["id"], alarm.get("aid")

    def operator(self, name: str, what: str, route: str) -> bool:
        found = self.open_alarm_id(name)
        if found is None:
            self.notes.append(f"{name}: no open alarm to {what}")
            return False
        alarm_id, aid = found
        aid = aid or self.monitor.open_aid(name)   # only the AML SMS reached the server yet
        try:
            if route == "console":
                self.console.action(alarm_id, "cloture" if what == "close" else "prise-en-charge",
                                    note="clôturée par la campagne" if what == "close" else "")
            elif what == "close":
                self.rig.server.close_alarm(alarm_id, "closed by the campaign")
            else:
                self.rig.server.ack_alarm(alarm_id)
        except (urllib.error.URLError, OSError, RuntimeError, Exception) as exc:  # noqa: BLE001
            self.notes.append(f"{name}: {what} through the {route} failed ({exc})")
            return False
        finally:
            self.notes.extend(f"{name}: {f}" for f in self.console.failures)
            self.console.failures.clear()
        if what == "close":
            self.monitor.operator_closed(name, aid, time.monotonic())
        return True

    # -- steps -------------------------------------------------------------------------------

    def run(self, step: Step) -> None:
        getattr(self, "do_" + step.kind)(step.device, **step.params)
        self.watch_rollout()

    def watch_rollout(self) -> None:
        """After every step once a roll-out was started: tell the monitor when the server
        paused it by itself (an update of it not done can no longer be judged)."""
        if self._rollout is None:
            return
        try:
            status = fleet.rollout_status(self.rig.server)
        except Exception:  # noqa: BLE001 - the server down (a server_fault): next step
            return
        if status is None:
            return
        seen = (status["version"], status["phase"])
        if seen != self._rollout and status["phase"] == "paused":
            self.monitor.rollout_ended(status["version"], "paused", status.get("reason", ""),
                                       time.monotonic())
            self.notes.append(f"roll-out {status['version']} paused: {status.get('reason')}")
        self._rollout = seen

    def do_short_press(self, name, hold_s, gap_s):
        self.press(name, hold_s)
        self.wait(gap_s)

    def do_hold(self, name, hold_s, gap_s):
        self.press(name, hold_s)
        self.wait(gap_s)

    do_hold_while_open = do_hold

    def do_hold_during_boot(self, name, off_s, press_after_s, hold_s, gap_s):
        handset = self.handset(name)
        handset.power_cut()
        time.sleep(off_s)
        handset.power_on()
        time.sleep(press_after_s)
        self.press(name, hold_s)
        self.wait(gap_s)

    def do_two_alarms(self, name, hold_s, close_after_s, route, second_after_s, gap_s):
        self.press(name, hold_s)
        self.wait(close_after_s)
        if self.operator(name, "close", route):
            deadline = self.monitor.idle_wanted(name) or time.monotonic()
            self.wait(max(0.0, deadline - time.monotonic()))
        self.wait(second_after_s)
        self.press(name, hold_s)
        self.wait(gap_s)

    def do_operator_ack(self, name, route, gap_s):
        self.operator(name, "ack", route)
        self.wait(gap_s)

    def do_operator_close(self, name, route, gap_s):
        self.operator(name, "close", route)
        self.wait(gap_s)

    def do_police_mode(self, name, mode, gap_s, hangup_after_s=None, answer_after_s=None,
                       for_s=None):
        """How the police operators treat calls: answer and hang up after N s, answer and
        never hang up, or (for `for_s` seconds, then answer again) never answer, busy, reject."""
        police = self.rig.police
        if mode == "answer_hangup":
            police.behave("answer", answer_after_s=answer_after_s, hangup_after_s=hangup_after_s)
        elif mode == "never_hangup":
            police.behave("answer", answer_after_s=answer_after_s or 0.5, hangup_after_s=None)
        else:
            police.behave(mode)
            self._later(for_s or 3.0, police.behave, "answer", answer_after_s=0.5,
                        hangup_after_s=5.0)
        self.wait(gap_s)

    def do_second_call_mode(self, name, mode, gap_s=0.0):
        """What this handset's module does with an ATD while a call is up: refuse or hold."""
        self.handset(name).modem.inject("second_call", mode=mode)
        self.wait(gap_s)

    def do_police_hangup(self, name, gap_s):
        self.rig.police.hangup()
        self.wait(gap_s)

    def do_police_callback(self, name, hangup_after_s, gap_s):
        handset = self.handset(name)
        self.monitor.interrupt(name, time.monotonic())
        self.rig.police.call_back(handset.identity.special_number, hangup_after_s=hangup_after_s)
        self.wait(gap_s)

    def do_unknown_call(self, name, gap_s, withheld=False):
        at = self._aggressor_client()
        self.monitor.interrupt(name, time.monotonic())
        self._aggressor.clir = bool(withheld)
        target = self.handset(name).identity.special_number
        try:
            at.command(f"ATD{target};")
            # rejected while it rings (NO CARRIER), or BUSY when she is already in a call
            ends = (b"NO CARRIER\r\n", b"BUSY\r\n")
            deadline = time.monotonic() + 10
            while not any(end in at.buffer for end in ends):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no NO CARRIER or BUSY in 10 s: {bytes(at.buffer)!r}")
                at._pump()
            at.buffer.clear()
        except Exception as exc:  # noqa: BLE001 - the aggressor's line is not under test
            self.notes.append(f"{name}: unknown caller: {exc}")
            try:
                at.command("AT+CHUP")
            except Exception:  # noqa: BLE001
                pass
        self.wait(gap_s)

    def _aggressor_client(self):
        if self._aggressor_at is None:
            from .emulator import Sim7600Emulator, Track
            from .emulator.client import boot

            self._aggressor = Sim7600Emulator(self.rig.net, msisdn=UNKNOWN_CALLER,
                                              track=Track.fixed(-22.27, 166.45))
            self._aggressor_at = boot(self._aggressor)
            for command in ("ATE0", "AT+CLCC=1", "AT+CVHU=0"):
                self._aggressor_at.command(command)
        return self._aggressor_at

    def do_network_loss(self, name, what, duration_s, gap_s):
        modem = self.handset(name).modem
        now = time.monotonic()
        if what == "data":
            modem.inject("data_down", duration_s=duration_s)
            channels = {DATA}
        elif what == "voice":
            modem.inject("voice_down", duration_s=duration_s)
            channels = {VOICE, SMS}
        else:
            modem.inject("no_service", duration_s=duration_s)
            channels = {DATA, VOICE, SMS}
        self.monitor.disturb(name, channels, now, now + duration_s)
        self.wait(gap_s)

    def do_sms_centre_failure(self, name, count, code, gap_s):
        self.handset(name).modem.inject("sms_error", code=code, count=count)
        now = time.monotonic()
        self.monitor.disturb(name, {SMS}, now, now + 0.5)   # at most the first attempt
        self.wait(gap_s)

    def do_server_fault(self, name, mode, duration_s, delay_s, status, gap_s):
        now = time.monotonic()
        if mode == "down":
            self.rig.server.go_down()
            self._later(duration_s, self.rig.server.come_back)
        elif mode == "slow":
            self.faults.delay_s = delay_s
            self._later(duration_s, setattr, self.faults, "delay_s", 0.0)
        else:
            self.faults.status = status
            self._later(duration_s, setattr, self.faults, "status", 0)
        # a slow answer may outlive the fault by its delay and the modem's timeout
        self.monitor.disturb(None, {DATA, SERVER}, now, now + duration_s + delay_s)
        self.wait(gap_s)

    def do_modem_reboot(self, name, gap_s):
        now = time.monotonic()
        self.handset(name).modem.inject("reboot")
        self.monitor.disturb(name, {MODEM}, now, now + self.reset_s + 2.0)
        self.wait(gap_s)

    def do_modem_silent(self, name, duration_s, gap_s):
        now = time.monotonic()
        self.handset(name).modem.inject("silence", duration_s=duration_s)
        # the firmware notices, power-cycles the modem (PWRKEY off 2.5 s, on, boot)
        self.monitor.disturb(name, {MODEM}, now, now + duration_s + self.reset_s + 6.0)
        self.wait(gap_s)

    def do_power_cut(self, name, delay_s, off_s, gap_s):
        handset = self.handset(name)
        time.sleep(delay_s)
        handset.power_cut()
        time.sleep(off_s)
        handset.power_on()
        self.wait(gap_s)

    def do_gnss_sky(self, name, sky, gap_s):
        self.handset(name).modem.inject("outdoor" if sky else "indoor")
        self.wait(gap_s)

    def do_battery(self, name, mv, gap_s):
        self.handset(name).modem.inject("battery", mv=mv)
        self.monitor.battery(name, mv, time.monotonic())
        self.wait(gap_s)

    def do_idle(self, name, gap_s):
        self.wait(gap_s)

    def do_update_offered(self, name, gap_s):
        """A new release, above what she runs, offered to her handset (the canary)."""
        self._offer(name, GOOD)
        self.wait(gap_s)

    def do_update_bad(self, name, bad, gap_s):
        """A bad release offered to her handset: it fails its self-test, or is signed with
        another key (a compromised server trusting it), or was tampered with on the server."""
        self._offer(name, {"selftest": SELFTEST, "other_key": OTHER_KEY,
                           "tampered": TAMPERED}[bad])
        self.wait(gap_s)

    def _offer(self, name: str, kind: str) -> None:
        if self.releases is None:
            self.notes.append(f"{name}: no release key on this rig (update step skipped)")
            return
        busy = self.monitor.updates_pending()
        if busy:
            # one update at a time: a new roll-out would take the offer from the other
            self.notes.append(f"{name}: an update is under way on {', '.join(busy)} "
                              "(nothing new offered)")
            return
        device = self.names[name]
        try:
            release = self.releases.make(kind)
            self.monitor.release_made(release.version, kind)
            status = self.releases.rollout(release.version, device)
        except Exception as exc:  # noqa: BLE001 - the server down (a server_fault) at that moment
            self.notes.append(f"{name}: update not offered ({type(exc).__name__}: "
                              f"{str(exc)[:120]})")
            return
        self.monitor.offered(name, release.version, time.monotonic())
        self._rollout = (release.version, status["phase"])

    # -- the end ------------------------------------------------------------------------------

    def recover(self) -> None:
        """Every fault ended, every handset powered: the world as it should be."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self.faults.delay_s = 0.0
        self.faults.status = 0
        self.rig.server.come_back()
        for name in self.names:
            handset = self.handset(name)
            if not handset.running:
                handset.power_on()
            modem = handset.modem
            for fault in ("data_up", "voice_up", "service_back", "outdoor"):
                modem.inject(fault)

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._aggressor_at is not None:
            try:
                self._aggressor_at.close()
            finally:
                self._aggressor.close()

