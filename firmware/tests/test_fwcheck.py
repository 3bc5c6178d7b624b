"""tools/fwcheck.py: passes on the modem layer, fails on CPython-only firmware code."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import fwcheck  # noqa: E402

# the modem package, in its folder: its modules import each other as tgd.modem.*
MODEM_LAYER = ("tgd/__init__.py", "tgd/modem/__init__.py", "tgd/modem/at.py",
               "tgd/modem/atparse.py", "tgd/modem/errors.py", "tgd/modem/sim7600.py")

GOOD = """
import asyncio
import time

from micropython import const

_PERIOD_MS = const(20)


async def tick(n):
    start = time.ticks_ms()
    for _ in range(n):
        await asyncio.sleep_ms(_PERIOD_MS)
    return time.ticks_diff(time.ticks_ms(), start)
"""

BAD_SNIPPETS = {
    "monotonic": ("import time\n\ndef f():\n    return time.monotonic()\n", "monotonic"),
    "dataclasses": ("from dataclasses import dataclass\n", "dataclasses"),
    "typing": ("import typing\n", "typing"),
    "future": ("from __future__ import annotations\n", "__future__"),
    "fstring_eq": ("def f(x):\n    return f'{x=}'\n", "f-string"),
    "fstring_eq_fmt": ("def f(x):\n    return f'{x = :>4}'\n", "f-string"),
    "match": ("def f(x):\n    match x:\n        case 1:\n            return 1\n", "match"),
    "machine_attr": ("import machine\n\ndef f():\n    return machine.NoSuchPeripheral()\n", "NoSuchPeripheral"),
    "board_kwarg": ("import machine\n\ndef f():\n    return machine.Pin(4, no_such_option=1)\n", "no_such_option"),
    "cpython_module": ("import sqlite3\n", "sqlite3"),
    "syntax": ("def f(:\n    pass\n", "syntax"),
}


def write(dirpath: Path, name: str, text: str) -> Path:
    path = dirpath / name
    path.write_text(text)
    return path


def test_the_modem_layer_passes(tmp_path):
    for name in MODEM_LAYER:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "firmware" / name, tmp_path / name)
    write(tmp_path, "good.py", GOOD)
    assert fwcheck.check(tmp_path, verbose=False) == []


@pytest.mark.parametrize("case", sorted(BAD_SNIPPETS))
def test_cpython_only_code_fails(tmp_path, case):
    text, needle = BAD_SNIPPETS[case]
    write(tmp_path, "good.py", GOOD)
    write(tmp_path, "bad.py", text)
    problems = fwcheck.check(tmp_path, compile_mpy=case == "syntax", verbose=False)
    assert problems, f"{case} was not caught"
    assert any(needle in p and "bad.py" in p for p in problems), problems
    assert not any("good.py" in p for p in problems), problems


def test_comparisons_in_fstrings_are_not_mistaken_for_the_eq_specifier(tmp_path):
    write(tmp_path, "ok.py", "def f(x):\n    return f'{x == 1} {x != 2} {x <= 3} {x >= 4}'\n")
    assert fwcheck.scan_cpython_only(tmp_path / "ok.py") == []


def test_command_line_exit_status(tmp_path, capsys):
    write(tmp_path, "good.py", GOOD)
    assert fwcheck.main(["--firmware", str(tmp_path)]) == 0
    write(tmp_path, "bad.py", BAD_SNIPPETS["monotonic"][0])
    assert fwcheck.main(["--firmware", str(tmp_path), "--skip-compile"]) == 1
    assert "monotonic" in capsys.readouterr().out
