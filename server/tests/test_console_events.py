"""The event bus: in-process fan-out, and PostgreSQL LISTEN/NOTIFY across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager

import pytest
from server_testkit import wait_until

from tgd_server import events

PG_URL = os.environ.get("TGD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=2):
            return True
    except Exception:
        return False


needs_pg = pytest.mark.skipif(not _pg_reachable(), reason=f"PostgreSQL not reachable at {PG_URL}")


def test_publish_reaches_every_subscriber_and_closed_ones_no_more():
    a, b = events.subscribe(), events.subscribe()
    events.publish({"type": "alarm.created", "alarm_id": 1})
    assert a.get(1)["alarm_id"] == 1
    assert b.get(1)["alarm_id"] == 1
    b.close()
    events.publish({"type": "alarm.updated", "alarm_id": 1})
    assert a.get(1)["type"] == "alarm.updated"
    assert b.get(0.05) is None
    a.close()


def test_to_libpq_url_drops_the_driver_and_refuses_other_databases():
    assert events.to_libpq_url("postgresql+psycopg://u@h:5432/db") == "postgresql://u@h:5432/db"
    with pytest.raises(ValueError):
        events.to_libpq_url("sqlite:///var/tgd.sqlite3")


def test_a_too_large_event_is_slimmed_to_its_scalar_keys():
    event = {"type": "alarm.updated", "alarm_id": 7, "positions": [{"lat": 1.0}] * 2000}
    payload = json.loads(events.encode_for_notify(event, "me"))
    assert payload == {"type": "alarm.updated", "alarm_id": 7, "_origin": "me", "truncated": True}
    assert events.encode_for_notify({"type": "x", "blob": "y" * 9000}, "me") is None


def test_an_unreachable_postgresql_is_not_retried_by_every_publish():
    bridge = events.PgBridge("postgresql://postgres@127.0.0.1:1/none", lambda e: None)
    attempts = []
    real_connect = bridge._connect
    bridge._connect = lambda: attempts.append(1) or real_connect()
    assert bridge.send({"type": "alarm.created"}) is False
    assert len(attempts) == 2  # the first failure re-opens once
    assert bridge.send({"type": "alarm.created"}) is False
    assert len(attempts) == 2  # paused: the next ingest does not wait on PostgreSQL again
    assert bridge.send_failures == 2


@contextmanager
def _listening(callback, origin: str):
    """A bridge of another process, listening on the default channel, for the test's span."""
    listener = events.PgBridge(events.to_libpq_url(PG_URL), callback, origin=origin)
    listener.start()
    try:
        assert listener.listening.wait(5)
        yield listener
    finally:
        listener.stop()


@contextmanager
def two_bridges(channel: str):
    """Two processes' bridges on `channel`, both listening: (a, what a got, b, what b got)."""
    got_a: list[dict] = []
    got_b: list[dict] = []
    a = events.PgBridge(PG_URL, got_a.append, origin="a", channel=channel)
    b = events.PgBridge(PG_URL, got_b.append, origin="b", channel=channel)
    a.start()
    b.start()
    try:
        assert a.listening.wait(5) and b.listening.wait(5)
        yield a, got_a, b, got_b
    finally:
        a.stop()
        b.stop()


@needs_pg
def test_two_bridges_exchange_events_and_never_echo_their_own():
    with two_bridges("tgd_events_test") as (a, got_a, _b, got_b):
        assert a.send({"type": "alarm.created", "alarm_id": 42})
        wait_until(lambda: got_b, timeout=5)
        assert got_b == [{"type": "alarm.created", "alarm_id": 42}]
        time.sleep(0.2)
        assert got_a == []  # a's own event is not delivered twice to a


def test_events_are_packed_several_per_notify_in_order():
    batch = [{"type": "device.updated", "i": i, "pad": "x" * 200} for i in range(100)]
    payloads, dropped = events.encode_batch_for_notify(batch, "me")
    assert dropped == 0 and 1 < len(payloads) < 10
    assert all(len(p.encode()) < 8000 and p.startswith('{"_origin":"me",') for p in payloads)
    unpacked = [e for p in payloads for e in json.loads(p)["events"]]
    assert unpacked == batch


@needs_pg
def test_queued_events_reach_the_other_process_in_order_and_not_their_own():
    with two_bridges("tgd_events_test2") as (a, got_a, _b, got_b):
        for i in range(300):
            a.enqueue({"type": "device.updated", "i": i})
        wait_until(lambda: len(got_b) >= 300, timeout=5)
        assert [e["i"] for e in got_b] == list(range(300))
        time.sleep(0.2)
        assert got_a == []


@needs_pg
def test_an_event_published_in_another_process_reaches_a_subscriber_here():
    events.enable_pg_fanout(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
    try:
        sub = events.subscribe()
        assert events._pg_bridge is not None and events._pg_bridge.listening.wait(5)
        script = textwrap.dedent(
            f"""
            from tgd_server import events
            events.enable_pg_fanout({PG_URL!r})
            events.publish({{"type": "alarm.created", "alarm_id": 99, "from": "child"}})
            events.disable_pg_fanout()
            """
        )
        subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
        event = sub.get(5)
        assert event is not None, "the child's event never arrived"
        assert (event["type"], event["alarm_id"], event["from"]) == ("alarm.created", 99, "child")
        sub.close()
    finally:
        events.disable_pg_fanout()


@needs_pg
def test_a_process_that_exits_right_after_publishing_still_sends_its_events():
    got: list[dict] = []
    with _listening(got.append, "listener"):
        script = textwrap.dedent(
            f"""
            from tgd_server import events
            events.enable_pg_fanout({PG_URL!r})
            for i in range(50):
                events.publish({{"type": "exiting", "i": i}})
            """  # no disable_pg_fanout(): the sender thread's queue is flushed at exit
        )
        subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
        wait_until(lambda: len(got) >= 50, timeout=5, poll_s=0.02)
    assert [e["i"] for e in got if e.get("type") == "exiting"] == list(range(50))


@needs_pg
def test_fanout_figures_across_processes_none_lost():
    """Prints p50/p99 from publish in one process to delivery in another (a figure, not a gate)."""
    count = 1000
    received: list[tuple[float, dict]] = []
    with _listening(lambda e: received.append((time.time(), e)), "bench"):
        script = textwrap.dedent(
            f"""
            import time
            from tgd_server import events
            events.enable_pg_fanout({PG_URL!r})
            events.publish({{"type": "warm-up"}})  # the bridge connects once, not per event
            time.sleep(0.5)
            started = time.time()
            for i in range({count}):
                events.publish({{"type": "bench", "i": i, "sent_at": time.time()}})
            print(f"{{{count} / (time.time() - started):.0f}}")
            events.disable_pg_fanout()
            """
        )
        child = subprocess.run([sys.executable, "-c", script], check=True, timeout=60,
                               capture_output=True, text=True)
        wait_until(lambda: len(received) >= count, timeout=10)
    bench = [(at, e) for at, e in received if e.get("type") == "bench"]
    assert sorted(e["i"] for _, e in bench) == list(range(count)), "events lost or doubled"
    latencies = sorted((at - e["sent_at"]) * 1000 for at, e in bench)
    print(f"\nevents figure: PostgreSQL fan-out, {count} events, publisher "
          f"{child.stdout.strip()} events/s, p50 {latencies[count // 2]:.2f} ms, "
          f"p99 {latencies[int(count * 0.99)]:.2f} ms, lost 0")
