"""`tgd-server bench` still runs end to end (a small fleet): every message answered 200,
stored once and seen once on the event stream. Figures are not checked here (they
depend on the machine); docs/benchmarks.md has them."""

from __future__ import annotations

import os

import pytest

from tgd_server.bench import run_bench

PG_URL = os.environ.get("TGD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _assert_nothing_lost(report: dict) -> None:
    assert report["messages"] == 130  # 100 heartbeats, 10 alarms, 20 positions
    assert report["statuses"] == {"200": 130}
    assert report["stored"] == report["events"] == 130
    assert report["lost"] == 0 and report["duplicate_events"] == 0


@pytest.mark.parametrize("workers", [0, 1])
def test_bench_on_sqlite_loses_nothing(workers):
    _assert_nothing_lost(run_bench(devices=100, workers=workers, concurrency=4))


@pytest.mark.postgres
def test_bench_on_postgresql_with_the_event_fanout_loses_nothing(pg_schema_url):
    # pg_schema_url: skips when PostgreSQL is unreachable (the bench makes its own schema)
    report = run_bench(devices=100, workers=2, concurrency=4, database_url=PG_URL,
                       events_pg=True)
    assert report["database"] == "postgresql" and report["events_pg"]
    _assert_nothing_lost(report)
