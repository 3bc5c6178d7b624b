"""Helpers of the rig tests (test modules import from here, never from conftest:
every test folder has a conftest.py and only one module can be called `conftest`)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from tgd_rig.emulated import FIRMWARE_MAIN
from tgd_rig.scenario import Scenario

HIL = Path(__file__).resolve().parents[1]
SCENARIOS = HIL / "scenarios"
RIG_TOML = HIL / "rig.toml"
NO_BOARD = ("no board configured: hil_tests/rig.toml is absent "
            "(copy hil_tests/rig.example.toml, wiring in docs/hil.md)")


def wait_until(predicate, timeout: float = 5.0, poll_s: float = 0.02) -> bool:
    """Poll `predicate` until it is true or `timeout` has passed; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return bool(predicate())


def needs_firmware() -> None:
    if not FIRMWARE_MAIN.exists():
        pytest.skip(f"{FIRMWARE_MAIN} does not exist yet")


def assert_passed(report: dict) -> None:
    """Fail with the report's reasons and where the device log is."""
    if not report["passed"]:
        pytest.fail(f"scenario {report['scenario']} failed:\n  " + "\n  ".join(report["failures"])
                    + f"\n  channels: {[a['channels_s'] for a in report['alarms']]}"
                    + f"\n  device log: {report['log']}", pytrace=False)


def with_expect(scenario: Scenario, **changes) -> Scenario:
    return dataclasses.replace(scenario, expect=dataclasses.replace(scenario.expect, **changes))
