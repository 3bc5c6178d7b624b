"""The police call-back keys (police_numbers, callback_window_s) through the flashing tool:
built and validated with the firmware's own rules, and `provision --police-number`."""

from __future__ import annotations

import io
import json

import pytest

from tgd_flash import cli
from tgd_flash.errors import InvalidConfig
from tgd_flash.handset_config import build_config

BASE = dict(device_id="NC0401", key="ab" * 32, special_number="+687751401",
            server_url="http://127.0.0.1:9/api/v1/device/messages", sms_number="+687700100")


def test_defaults_answer_the_emergency_number_for_an_hour():
    cfg = build_config(**BASE, emergency_number="112")
    assert cfg["police_numbers"] == ["112"] and cfg["callback_window_s"] == 3600


def test_police_numbers_and_window_are_written_without_spaces():
    cfg = build_config(**BASE, police_numbers=["+687 27 12 34", "17"], callback_window_s=0)
    assert cfg["police_numbers"] == ["+687271234", "17"] and cfg["callback_window_s"] == 0


@pytest.mark.parametrize("override", [{"police_numbers": "17"}, {"police_numbers": ["17a"]},
                                      {"police_numbers": ["1"] * 9}, {"callback_window_s": -1},
                                      {"callback_window_s": 86401}])
def test_bad_call_back_settings_are_refused(override):
    with pytest.raises(InvalidConfig):
        build_config(**BASE, **override)


def test_cli_police_number_repeatable(tmp_path):
    out = io.StringIO()
    code = cli.main(
        ["provision", "--host-dir", str(tmp_path), "--device-id", "NC0402", "--special-number",
         "+687751402", "--sms-number", "+687700100", "--apn", "mobilis", "--device-url", "http://127.0.0.1:9/x",
         "--no-register", "--police-number", "+687 27 12 34", "--police-number", "17",
         "--callback-window-s", "1800"],
        out=out,
    )
    assert code == 0, out.getvalue()
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["police_numbers"] == ["+687271234", "17"] and cfg["callback_window_s"] == 1800
