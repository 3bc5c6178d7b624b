# heapsize: 192k
# (192k: these tests import the sources, compiled inside the VM; the lazily loaded
# heartbeat and aml are compiled again after each alarm, which a board never does.)
# The app's wiring on a scripted board and modem: boot, config, the button's hold,
# a press during an open alarm, a stuck button at boot, resume after a reboot,
# safe mode, heartbeat, low battery and last gasp.
import asyncio
import json

from tgd.app import App
from fake_modem import FakeModem, answer
from tgd.journal import FILE
from tgd.log import Log
from tgd.timing import Timing
from scratch import empty_dir, unique_dir

DIR = unique_dir("app")
KEY = "cd" * 32
DEBUG = False


def wipe(config=True, **over):
    empty_dir(DIR)
    if config:
        cfg = {"device_id": "NC0009", "key": KEY, "sms_number": "+687700100",
               "server_url": "http://127.0.0.1:9/m", "trigger_hold_ms": 2000,
               "track_interval_s": 60, "heartbeat_interval_s": 3600}
        cfg.update(over)
        with open(DIR + "/config.json", "w") as f:
            f.write(json.dumps(cfg))


class FakeBoard:
    name = "fake"

    def __init__(self, pressed=False):
        self.pressed = pressed
        self.motor_on = False

    def reset_cause(self):
        return "test"

    def log_level(self):
        return "info"

    def timing_scale(self):
        return 0.01

    def rtc_unix(self):
        return 1795678200

    def mount_flash(self):
        return DIR

    def button_pressed(self):
        return self.pressed

    def motor(self, on):
        self.motor_on = on


class Handset:
    def __init__(self, board=None, modem=None):
        self.board = board or FakeBoard()
        self.modem = modem or FakeModem()
        self.lines = []
        self.app = App(self.board, Log(sink=self._sink), Timing(0.01),
                       make_modem=lambda board, log: self.modem)
        self.task = asyncio.create_task(self.app.run())

    def _sink(self, line):
        if len(self.lines) < 400:  # a runaway loop must not eat the heap
            self.lines.append(line)
        if DEBUG:
            print(line)

    def names(self):
        return [ln.split(" ")[1] for ln in self.lines]

    def count(self, name):
        return self.names().count(name)

    def stop(self):
        self.task.cancel()
        self.app.deinit()

    async def until(self, cond, what, limit_ms=10000):
        waited = 0
        while not cond():
            if self.task.done():
                await self.task  # the app died: show why
            if waited > limit_ms:
                raise AssertionError("waiting for " + what + ": " + " | ".join(self.lines[-12:]))
            await asyncio.sleep_ms(5)
            waited += 5

    async def hold(self, ms):
        self.board.pressed = True
        await asyncio.sleep_ms(ms)
        self.board.pressed = False
        await asyncio.sleep_ms(60)


async def test_boot_then_hold_triggers_one_alarm_and_a_second_press_does_not():
    wipe()
    h = Handset()
    h.modem.http_default = answer("received")
    await h.until(lambda: "READY" in h.names(), "READY")
    assert h.names()[:2] == ["BOOT", "CONFIG"]
    await h.hold(2400)
    await h.until(lambda: "DIAL" in h.names(), "DIAL")
    assert h.count("ALARM") == 1
    await h.hold(2400)  # held again while the alarm is open
    assert h.count("ALARM") == 1
    assert any("already_open" in ln for ln in h.lines)
    h.stop()


async def test_short_hold_does_nothing():
    wipe()
    h = Handset()
    await h.until(lambda: "READY" in h.names(), "READY")
    await h.hold(1500)
    await asyncio.sleep_ms(100)
    assert "ALARM" not in h.names() and h.count("BUTTON") == 2
    h.stop()


async def test_button_stuck_at_boot_never_triggers():
    wipe()
    h = Handset(FakeBoard(pressed=True))
    await h.until(lambda: "READY" in h.names(), "READY")
    await asyncio.sleep_ms(2500)
    assert "ALARM" not in h.names()
    h.stop()


async def test_reboot_resumes_the_open_alarm():
    wipe()
    h = Handset()
    h.modem.http_default = answer("received")
    await h.until(lambda: "READY" in h.names(), "READY")
    await h.hold(2400)
    await h.until(lambda: "DIAL" in h.names(), "DIAL")
    aid = [ln for ln in h.lines if " ALARM " in ln][0].split("aid=")[1].split(" ")[0]
    h.stop()
    await asyncio.sleep_ms(10)
    h2 = Handset()
    h2.modem.http_default = answer("closed")
    await h2.until(lambda: "ALARM_END" in h2.names(), "ALARM_END")
    resumed = [ln for ln in h2.lines if " ALARM " in ln]
    assert len(resumed) == 1 and "resumed=1" in resumed[0] and ("aid=" + aid) in resumed[0]
    assert all(json.loads(b)["aid"] == aid for _, b, _ in h2.modem.posts if b"aid" in b)
    h2.stop()


async def test_safe_mode_without_config():
    wipe(config=False)
    h = Handset()
    await h.until(lambda: "READY" in h.names(), "READY")
    assert "SAFE_MODE" in h.names()
    await h.hold(2400)
    await h.until(lambda: "DIAL" in h.names(), "DIAL")
    await asyncio.sleep_ms(50)
    assert h.modem.posts == []
    h.stop()


async def test_heartbeat_then_low_battery_then_last_gasp():
    wipe(heartbeat_interval_s=60)
    modem = FakeModem()
    modem.bat = 4000
    h = Handset(modem=modem)
    await h.until(lambda: "HEARTBEAT" in h.names(), "HEARTBEAT")
    beat = json.loads(modem.posts[0][1])
    assert beat["type"] == "heartbeat" and beat["bat"] == 4000 and beat["cell"]["ci"] == 20513
    modem.bat = 3500
    await h.until(lambda: "LOW_BATTERY" in h.names(), "LOW_BATTERY", 20000)
    modem.bat = 3300
    await h.until(lambda: "LAST_GASP" in h.names(), "LAST_GASP", 20000)

    def types():
        return [json.loads(b)["type"] for _, b, _ in modem.posts]
    await h.until(lambda: "last_gasp" in types(), "the last gasp message")
    assert "low_battery" in types()
    assert h.count("LOW_BATTERY") == 1 and h.count("LAST_GASP") == 1
    h.stop()


async def test_journal_is_on_the_flash():
    wipe()
    h = Handset()
    h.modem.http_default = answer("received")
    await h.until(lambda: "READY" in h.names(), "READY")
    await h.hold(2400)
    await h.until(lambda: "DIAL" in h.names(), "DIAL")
    with open(DIR + "/" + FILE) as f:
        assert '"open"' in f.read()
    h.stop()
