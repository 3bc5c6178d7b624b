"""Fixtures of the rig tests: one test body, two backends.

`backend` is "emulated" (always) or "serial" (marker `serial`; skipped with the
reason when hil_tests/rig.toml is absent). `run_named(name)` runs
hil_tests/scenarios/<name>.toml on the backend and returns the report.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from rig_testkit import (  # noqa: F401 (assert_passed, with_expect re-exported)
    HIL,
    NO_BOARD,
    RIG_TOML,
    SCENARIOS,
    assert_passed,
    needs_firmware,
    with_expect,
)

from tgd_rig.errors import Unsupported
from tgd_rig.runner import run_scenario
from tgd_rig.scenario import Scenario, load_scenario

# Work directories (device logs, databases) outlive the test run here, so the log path in a
# failure message still exists; `make clean` removes them.
RIG_WORK = HIL.parent / "var" / "test-rig"


@pytest.fixture(params=["emulated", pytest.param("serial", marks=pytest.mark.serial)])
def backend(request) -> str:
    if request.param == "serial" and not RIG_TOML.exists():
        pytest.skip(NO_BOARD)
    return request.param


STALE_AFTER_S = 6 * 3600


@pytest.fixture
def rig_workdir(request) -> Path:
    """A fresh directory of its own (other test sessions may run at the same time)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    RIG_WORK.mkdir(parents=True, exist_ok=True)
    for old in RIG_WORK.glob(f"{name}-*"):
        try:
            if time.time() - old.stat().st_mtime > STALE_AFTER_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=RIG_WORK))


@pytest.fixture
def run_named(backend, rig_workdir):
    def run(name: str, scenario: Scenario | None = None, seed: int = 1) -> dict:
        sc = scenario or load_scenario(SCENARIOS / f"{name}.toml")
        if backend == "serial":
            if sc.faults:
                pytest.skip("fault injection needs the emulated network")
            from tgd_rig.serial_backend import SerialRig

            rig = SerialRig.from_toml(RIG_TOML)
            rig.start()
            try:
                return run_scenario(sc, rig=rig)
            except Unsupported as exc:
                pytest.skip(str(exc))
            finally:
                rig.stop()
        needs_firmware()
        return run_scenario(sc, workdir=rig_workdir, seed=seed)
    return run


@pytest.fixture
def net():
    """A simulated network with the emulator's fast timing (the emulator tests' base)."""
    from tgd_rig.emulator import Network, Timing

    network = Network(timing=Timing.fast(0.01))
    network.start()
    yield network
    network.stop()


@pytest.fixture
def modem(net):
    """An emulated SIM7600 in Nouméa (off: boot it, or take `at`)."""
    from tgd_rig.emulator import Sim7600Emulator, Track

    m = Sim7600Emulator(net, msisdn="+687751001", track=Track.fixed(-22.2758, 166.458))
    yield m
    m.close()


@pytest.fixture
def at(modem):
    """An AT client on the booted modem, echo off."""
    from tgd_rig.emulator.client import boot

    client = boot(modem)
    client.command("ATE0")
    yield client
    client.close()


@pytest.fixture
def ota_rig(rig_workdir):
    """The OTA rig tests' world: the rig at fast timing and the OTA test server
    (ota_testkit.OtaServer) the handsets are pointed to. -> (rig, server)."""
    from ota_testkit import OtaServer
    from rig_testkit import needs_firmware

    from tgd_rig.emulated import EmulatedRig

    needs_firmware()
    with OtaServer() as server, EmulatedRig(rig_workdir, timing="fast",
                                             police_answer_after_s=0.3) as rig:
        yield rig, server
