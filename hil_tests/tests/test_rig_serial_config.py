"""The serial rig's hardware description: the example is valid, mistakes are named."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest

from tgd_rig.errors import RigConfigError
from tgd_rig.serial_backend import SerialRig, validate_rig_config

EXAMPLE = Path(__file__).resolve().parents[1] / "rig.example.toml"


def example() -> dict:
    return tomllib.loads(EXAMPLE.read_text())


def test_the_example_is_valid():
    rig = SerialRig.from_toml(EXAMPLE)
    assert rig.sms_number == "+687751999"
    assert rig.cfg["button"]["line"] == "rts"


@pytest.mark.parametrize("path, value, words", [
    (("board",), None, "[board] is missing"),
    (("board", "console"), None, "board.console is missing"),
    (("receiver", "number"), 17, "receiver.number is missing"),
    (("button", "line"), "cts", "button.line must be one of"),
    (("truth", "lat"), "south", "[truth] needs lat and lon"),
])
def test_mistakes_are_named(path, value, words):
    cfg = copy.deepcopy(example())
    table = cfg
    for key in path[:-1]:
        table = table[key]
    if value is None:
        del table[path[-1]]
    else:
        table[path[-1]] = value
    with pytest.raises(RigConfigError) as info:
        validate_rig_config(cfg, "rig.toml")
    assert words in str(info.value)


def test_start_without_a_token_is_refused(monkeypatch):
    monkeypatch.delenv("TGD_RIG_OPERATOR_TOKEN", raising=False)
    rig = SerialRig.from_toml(EXAMPLE)
    with pytest.raises(RigConfigError, match="operator token"):
        rig.start()


def test_absent_ports_are_named(monkeypatch, tmp_path):
    monkeypatch.setenv("TGD_RIG_OPERATOR_TOKEN", "tgd_x")
    rig = SerialRig(example(), workdir=tmp_path)
    with pytest.raises(RigConfigError, match="cannot be opened"):
        rig.start()
