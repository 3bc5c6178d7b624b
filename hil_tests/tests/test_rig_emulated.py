"""The emulated backend's own mechanics, with a firmware that misbehaves on purpose."""

from __future__ import annotations

import pytest

from tgd_rig.emulated import EmulatedRig
from tgd_rig.errors import FirmwareExited


def test_a_firmware_that_dies_fails_the_wait_at_once_with_its_last_words(rig_workdir):
    crashing = rig_workdir / "crash_main.py"
    crashing.write_text("import sys\nprint('1 BOOT fw=broken board=host reset=power_on')\n"
                        "raise MemoryError('memory allocation failed')\n")
    with EmulatedRig(rig_workdir / "rig", firmware_main=crashing) as rig:
        handset = rig.add_handset("CR0001")
        handset.power_on()
        with pytest.raises(FirmwareExited) as info:
            handset.expect("READY", timeout=60)
    text = str(info.value)
    assert "exit code 1" in text and "MemoryError" in text and "BOOT fw=broken" in text
    assert str(handset.log.path) in text
