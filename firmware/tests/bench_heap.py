# Heap figures of the firmware, measured inside the MicroPython VM:
#   .venv/bin/micropython -X heapsize=512k firmware/tests/bench_heap.py
# 1. code: what importing every module keeps (compiled .mpy from firmware/.mpy-cache
#    when main.py has built it, else the sources);
# 2. live data during an alarm against the scripted modem (tests/mp/fake_modem.py),
#    sampled after a collection every few milliseconds: the peak is what the heap
#    must hold on top of the code.
import gc
import sys

HERE = __file__.rsplit("/", 1)[0]
FW = HERE + "/.."
sys.path.insert(0, HERE + "/mp")
sys.path.insert(0, FW)
sys.path.insert(0, FW + "/.mpy-cache")

gc.collect()
base = gc.mem_alloc()
import asyncio  # noqa: E402

MODULES = ("errors", "log", "unixtime", "aml", "hmac256", "message", "journal", "button",
           "vibrate", "clock", "timing", "device", "uplink", "alarm", "heartbeat", "atparse",
           "at", "sim7600", "app", "board_host")
sizes = []
for name in MODULES:
    gc.collect()
    before = gc.mem_alloc()
    try:
        __import__(name)
    except ImportError as e:
        print("skip", name, e)
        continue
    gc.collect()
    sizes.append((name, gc.mem_alloc() - before))
gc.collect()
code = gc.mem_alloc() - base
print("code resident after importing every module: %d bytes" % code)
for name, size in sizes:
    print("  %-12s %6d" % (name, size))

import config  # noqa: E402
from alarm import Alarm  # noqa: E402
from clock import Clock  # noqa: E402
from device import Device  # noqa: E402
from fake_modem import FakeModem, answer  # noqa: E402
from journal import Journal  # noqa: E402
from log import Log  # noqa: E402
from timing import Timing  # noqa: E402
from vibrate import Vibrator  # noqa: E402

DIR = "/tmp/tgd-bench-heap"
try:
    import os
    os.mkdir(DIR)
except OSError:
    pass
for n in os.listdir(DIR):
    os.remove(DIR + "/" + n)

peak = [0]


async def sampler(stop):
    while not stop[0]:
        gc.collect()
        used = gc.mem_alloc()
        if used > peak[0]:
            peak[0] = used
        await asyncio.sleep_ms(2)


async def run():
    cfg = config.defaults()
    cfg.update({"device_id": "NC0001", "key": "ab" * 32, "sms_number": "+687700100",
                "server_url": "http://127.0.0.1:9/api/v1/device/messages", "track_interval_s": 30})
    modem = FakeModem()
    modem.gnss_fix_after = 3
    modem.http_script = [answer("received")] * 3 + [answer("acknowledged")] * 5 + [answer("closed")]
    log = Log(sink=lambda line: None)
    journal = Journal(DIR, log)
    journal.open()
    clock = Clock()
    clock.set(1795678200)
    dev = Device(modem, journal, cfg, None, log, clock, Vibrator(lambda on: None, log),
                 Timing(0.002))
    dev.ready.set()
    dev.imei = "357365093474415"
    gc.collect()
    before = gc.mem_alloc()
    stop = [False]
    t = asyncio.create_task(sampler(stop))
    alarm = Alarm.trigger(dev)
    modem.on_call = alarm.on_call
    modem.on_sms_report = alarm.on_sms_report
    await alarm.run()
    stop[0] = True
    await t
    print("alarm: %d data messages, sms %s, end %s" % (len(modem.posts), alarm.sms_state,
                                                        alarm.end_reason))
    print("live data before the alarm: %d bytes" % before)
    print("peak live data during the alarm: %d bytes (+%d for the alarm)" % (
        peak[0], peak[0] - before))


asyncio.run(run())
