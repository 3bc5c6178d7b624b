"""`tgd-server mqtt-bench` still runs end to end through a private Mosquitto (a small
fleet, the options docs/benchmarks.md uses): every message stored and seen once.
Figures are not checked here (they depend on the machine); docs/benchmarks.md has them."""

from __future__ import annotations

import json

import pytest
from mqtt_broker import mosquitto_binary

from tgd_server import cli

pytestmark = [
    pytest.mark.mosquitto,
    pytest.mark.skipif(mosquitto_binary() is None,
                       reason="the mosquitto binary is not installed (apt-get install mosquitto)"),
]


def test_mqtt_bench_with_lanes_and_slowed_round_trips_loses_nothing(capsys):
    assert cli.main(["mqtt-bench", "--devices", "300", "--rate", "575", "--workers", "32",
                     "--db-wait-ms", "4"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["bridge_workers"] == 32 and report["db_wait_ms"] == 4
    assert report["stored"] == report["events"] == 300 and report["lost"] == 0


@pytest.mark.parametrize("argv, flag", [(["--workers", "0"], "--workers"),
                                        (["--db-wait-ms", "slow"], "--db-wait-ms")])
def test_mqtt_bench_mistakes_name_the_flag(capsys, argv, flag):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["mqtt-bench", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err and "e.g." in err and "Traceback" not in err
