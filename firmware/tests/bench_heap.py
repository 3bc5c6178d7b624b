# Heap figures of the firmware, measured inside the MicroPython VM:
#   .venv/bin/micropython -X heapsize=512k firmware/tests/bench_heap.py        # figures
#   .venv/bin/micropython -X heapsize=512k firmware/tests/bench_heap.py min    # + bisection
# 1. code: what each module keeps resident, imported in the order the firmware loads
#    them (compiled .mpy from firmware/.mpy-cache, rebuilt first as main.py does);
# 2. live data during alarms against the scripted modem (tests/mp/fake_modem.py):
#    a nominal one and one whose server answers 500 many times (retries must not
#    accumulate), sampled after a collection every few milliseconds. The peak is what
#    the heap must hold; "after" shows what the alarm leaves behind;
# 3. with "min": the smallest heap, in 4wk steps (word units: 64wk holds on this
#    64-bit build what 64 KiB holds on a 32-bit ESP32), with which this bench's
#    imports and both alarms still run. The rig's scenarios are the final word
#    (docs/benchmarks.md "Firmware: memory and size").
import gc
import os
import sys

HERE = __file__.rsplit("/", 1)[0]
FW = HERE + "/.."
sys.path.insert(0, HERE + "/mp")
sys.path.insert(0, FW)
gc.collect()
_start = gc.mem_alloc()
import mpy_cache  # noqa: E402

mpy_cache.use_compiled_modules(FW)
del mpy_cache
sys.modules.pop("mpy_cache", None)
ALARM_ONLY = "alarm-only" in sys.argv

gc.collect()
base = gc.mem_alloc()
import asyncio  # noqa: E402

gc.collect()
asyncio_bytes = gc.mem_alloc() - base

# main.py imports log, the board, then app (which imports the rest, some through
# app_boot, the once-per-boot part that leaves again), then the modem
# driver; heartbeat comes when the first heartbeat is due.
ORDER = ("log", "board_host", "app", "device", "journal", "clock", "vibrate", "at", "sim7600",
         "heartbeat")
rows = []
for name in ORDER:
    gc.collect()
    before_mods = set(sys.modules)
    before = gc.mem_alloc()
    __import__(name)
    gc.collect()
    rows.append((name, gc.mem_alloc() - before, sorted(set(sys.modules) - before_mods)))
gc.collect()
code = gc.mem_alloc() - base
if not ALARM_ONLY:
    print("asyncio (frozen) resident: %d bytes" % asyncio_bytes)
    print("firmware code resident after the imports main.py does: %d bytes" % code)
    for name, size, mods in rows:
        print("  %-11s %6d  %s" % (name, size, " ".join(mods)))
# the alarm's own path: heartbeat's code leaves when an alarm starts (app.py)
sys.modules.pop("heartbeat", None)

import config  # noqa: E402
from alarm import Alarm  # noqa: E402
from clock import Clock  # noqa: E402
from device import Device  # noqa: E402
from fake_modem import FakeModem, answer  # noqa: E402
from journal import Journal  # noqa: E402
from log import Log  # noqa: E402
from timing import Timing  # noqa: E402
from vibrate import Vibrator  # noqa: E402

DIR = "/tmp/tgd-bench-heap-%d" % os.getpid() if hasattr(os, "getpid") else "/tmp/tgd-bench-heap"
CFG = config.defaults()
CFG.update({"device_id": "NC0001", "key": "ab" * 32, "sms_number": "+687700100",
            "server_url": "http://127.0.0.1:9/api/v1/device/messages", "track_interval_s": 30})
del config
sys.modules.pop("config", None)  # read once at boot, as app.py does
peak = [0]


def _fresh_dir():
    try:
        os.mkdir(DIR)
    except OSError:
        pass
    for n in os.listdir(DIR):
        os.remove(DIR + "/" + n)


async def _sampler(stop):
    while not stop[0]:
        gc.collect()
        used = gc.mem_alloc()
        if used > peak[0]:
            peak[0] = used
        await asyncio.sleep_ms(2)


async def _alarm(name, http_script):
    _fresh_dir()
    modem = FakeModem()
    modem.gnss_fix_after = 3
    modem.http_script = http_script
    log = Log(sink=lambda line: None)
    journal = Journal(DIR, log)
    journal.open()
    clock = Clock()
    clock.set(1795678200)
    dev = Device(modem, journal, CFG, None, log, clock, Vibrator(lambda on: None, log),
                 Timing(0.002))
    dev.ready.set()
    dev.online.set()
    dev.imei = "357365093474415"
    gc.collect()
    before = gc.mem_alloc()
    peak[0] = before
    stop = [False]
    t = asyncio.create_task(_sampler(stop))
    alarm = Alarm.trigger(dev)
    modem.on_call = alarm.on_call
    modem.on_sms_report = alarm.on_sms_report
    await alarm.run()
    stop[0] = True
    await t
    del alarm, t
    posts = len(modem.posts)
    modem.posts = modem.calls = None  # the scripted modem's own records are not the firmware's
    gc.collect()
    after = gc.mem_alloc()
    if not ALARM_ONLY:
        print("alarm %-13s %2d data messages: live before %d, peak %d (+%d), after %d (+%d)" % (
            name, posts, before, peak[0], peak[0] - before, after, after - before))
    return peak[0]


async def _run():
    closing = [answer("acknowledged")] * 5 + [answer("closed")]
    worst = await _alarm("nominal", [answer("received")] * 3 + closing)
    failing = [(500, b'{"ok":false}')] * 25 + [answer("received")] + closing
    worst = max(worst, await _alarm("server_errors", failing))
    worst = max(worst, await _alarm("nominal_again", [answer("received")] * 3 + closing))
    return worst


def _minimum_heap():
    # Re-run this bench (alarms only) in fresh VMs, 4wk steps down from 96wk.
    exe = getattr(sys, "executable", "") or "micropython"
    smallest = None
    for words_k in range(96, 28, -4):
        rc = os.system('"%s" -X heapsize=%dwk "%s" alarm-only >/dev/null 2>&1' % (
            exe, words_k, __file__))
        if rc != 0:
            break
        smallest = words_k
    return smallest


worst = asyncio.run(_run())
if ALARM_ONLY:
    sys.exit(0)
print("worst peak of live heap: %d bytes (heap in use before the firmware: %d)" % (worst, _start))
if "min" in sys.argv:
    m = _minimum_heap()
    print("smallest heap that runs this bench: %s" % ("%dwk" % m if m else "none of 96wk..32wk"))
