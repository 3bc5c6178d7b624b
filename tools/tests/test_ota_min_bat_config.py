"""ota_min_bat_mv (an update downloads only above it, tgd/ota/run.py) through the flashing
tool's config builder: the firmware's own range, a mistake names the flag."""

from __future__ import annotations

import pytest

from tgd_flash.errors import InvalidConfig
from tgd_flash.handset_config import build_config

BASE = dict(device_id="NC0501", key="cd" * 32, special_number="+687751501",
            server_url="http://127.0.0.1:9/api/v1/device/messages", sms_number="+687700100")


def test_default_and_override():
    assert build_config(**BASE)["ota_min_bat_mv"] == 3700
    assert build_config(**BASE, ota_min_bat_mv=3900)["ota_min_bat_mv"] == 3900


@pytest.mark.parametrize("value", [3299, 4301, "3800"])
def test_out_of_range_is_refused_naming_the_flag(value):
    with pytest.raises(InvalidConfig, match="--ota-min-bat-mv"):
        build_config(**BASE, ota_min_bat_mv=value)
