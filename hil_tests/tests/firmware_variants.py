"""Deliberately broken copies of the firmware, for the campaign's invariant tests.

`broken_firmware(dest, name)` copies firmware/ into `dest` and applies the variant's
text patches; the rig then starts `dest/main.py` in place of the real firmware
(`run_campaign(..., firmware_main=...)`). A patch whose text is no longer in the
firmware fails loudly, so a variant never silently becomes the real firmware.
"""

from __future__ import annotations

import shutil
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"

# name -> [(file, text in the real firmware, replacement)]
VARIANTS: dict[str, list[tuple[str, str, str]]] = {
    # I1: dials 1.5 s after the end of the hold
    "late_dial": [("tgd/alarm.py",
                   "        dev.log.event(\"DIAL\", n=dev.cfg[\"emergency_number\"], attempt=n)",
                   "        await asyncio.sleep_ms(1500)  # BROKEN\n"
                   "        dev.log.event(\"DIAL\", n=dev.cfg[\"emergency_number\"], attempt=n)")],
    # I2: triggers after a quarter of trigger_hold_ms
    "eager_button": [("tgd/button.py", ">= self.hold_ms):", ">= self.hold_ms // 4):  # BROKEN")],
    # I3: a hold during an open alarm opens a second alarm
    "second_alarm_while_open": [("tgd/app.py",
                                 "        if self.alarm is not None and self.alarm.is_open:\n"
                                 "            self.alarm.repress()",
                                 "        if False:  # BROKEN\n"
                                 "            self.alarm.repress()")],
    # I4: the first data message waits 4 s
    "late_position": [("tgd/alarm.py",
                       "            return  # no server identity in safe mode: call and AML SMS only\n"
                       "        await dev.ready.wait()",
                       "            return  # no server identity in safe mode: call and AML SMS only\n"
                       "        await dev.ready.wait()\n"
                       "        await asyncio.sleep_ms(4000)  # BROKEN")],
    # I4: the AML SMS is never sent
    "no_sms": [("tgd/alarm.py",
                "        number = dev.cfg[\"sms_number\"]\n        if not number:\n            return",
                "        number = None  # BROKEN\n        if not number:\n            return")],
    # I5: a resumed alarm takes a new aid (the server sees two alarms)
    "resume_new_aid": [("tgd/alarm.py",
                        "alarm = cls(dev, rec[\"aid\"], rec.get(\"at\"), None,",
                        "alarm = cls(dev, new_aid(), rec.get(\"at\"), None,  # BROKEN\n           ")],
    # I6: the button loop runs out of memory at a trigger, outside its guards: the app dies
    "memory_error_on_trigger": [("tgd/app.py",
                                 "            ms = 0\n            if sleep is not None and not raw",
                                 "            if ev == TRIGGER:\n"
                                 "                self._waste = bytearray(1 << 26)  # BROKEN\n"
                                 "            ms = 0\n            if sleep is not None and not raw")],
    # I7: the modem is kept awake after the alarm (DTR stays low: it never sleeps)
    "never_sleeps_after_close": [("tgd/app.py", "self.dev.modem.stay_awake(False)",
                                  "pass  # BROKEN")],
    # I7: the close from the server is ignored (the alarm never ends)
    "ignores_close": [("tgd/alarm.py",
                       "        if state == \"closed\":\n            self.end(\"closed\")",
                       "        if state == \"closed\":\n            pass  # BROKEN")],
}


def broken_firmware(dest: Path, name: str) -> Path:
    """A patched copy of firmware/ in dest; returns its main.py."""
    dest = Path(dest)
    shutil.copytree(FIRMWARE, dest, ignore=shutil.ignore_patterns(".mpy-cache", "tests",
                                                                   "__pycache__"))
    for filename, old, new in VARIANTS[name]:
        path = dest / filename
        text = path.read_text(encoding="utf-8")
        if text.count(old) != 1:
            raise AssertionError(f"variant {name}: the text to patch is not once in {filename} "
                                 f"(the firmware changed?): {old!r}")
        path.write_text(text.replace(old, new), encoding="utf-8")
    return dest / "main.py"
