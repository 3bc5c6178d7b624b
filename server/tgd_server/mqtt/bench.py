"""MQTT ingest benchmark: `tgd-server mqtt-bench`.

N simulated devices publish one signed heartbeat each (QoS 1, framed as on the
wire) through a real Mosquitto, running the project's configuration, into the
bridge and the ingest core. Reports messages per second (first publish to last
console event), the latency from publish to the `device.updated` event on the
console stream (events.subscribe()), and checks that nothing was lost or doubled.

`--workers` sets the bridge's worker lanes (default bridge.WORKERS) and
`--db-wait-ms` adds a wait to each round trip of the bench's engine (BEGIN, each
statement, COMMIT): what a busy machine does to PostgreSQL's round trips (each waits
for a CPU), made repeatable, so that configurations can be compared under it on a
quiet machine (docs/benchmarks.md, "MQTT transport").

The publishers are a few MQTT connections with a benchmark account allowed to
write every device's uplink topic (one TCP connection per simulated handset
would measure Python's socket handling, not the pipeline). This is a benchmark:
it prints figures and never asserts on time.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import statistics
import threading
import time

from ..bench import add_database_arguments, database_urls
from ..cli import subcommand

PUBLISHER = "tgd-bench"  # one account per publishing connection: tgd-bench-0, tgd-bench-1 ...


def run_mqtt_bench(devices: int = 10_000, publishers: int = 4, database_url: str | None = None,
                   rate: float = 0.0, timeout_s: float = 300.0,
                   persistent: bool = True, workers: int | None = None,
                   db_wait_ms: float = 0.0) -> dict:
    import logging
    import secrets

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from .. import events
    from ..bench import BenchDatabase, _body, _percentile, _register_devices
    from . import topics
    from .bridge import BRIDGE_USER, WORKERS, Bridge, BrokerSettings
    from .private_broker import PrivateBroker

    bench_db = BenchDatabase("tgd-mqtt-bench-", database_url)
    app, workdir = bench_db.app, bench_db.workdir
    logging.getLogger("tgd").setLevel(logging.WARNING)
    fleet = _register_devices(app, devices)
    if db_wait_ms > 0:
        _slow_round_trips(app.extensions["tgd_engine"], db_wait_ms / 1000)
    workers = workers or WORKERS

    bridge_password, publisher_password = secrets.token_hex(12), secrets.token_hex(12)
    publisher_users = [f"{PUBLISHER}-{i}" for i in range(publishers)]
    broker = PrivateBroker(workdir, [(BRIDGE_USER, bridge_password)]
                           + [(user, publisher_password) for user in publisher_users],
                           persistent=persistent,
                           extra_acl="".join(f"user {user}\ntopic write tgd/+/up\n"
                                             for user in publisher_users)).start()
    bridge = Bridge(app, BrokerSettings(port=broker.port, password=bridge_password,
                                        workers=workers))
    seen: dict[str, float] = {}
    subscription = events.subscribe()
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            event = subscription.get(timeout=0.2)
            if event is not None and event.get("type") == "device.updated":
                seen.setdefault(event["device_id"], time.time())

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    bridge.start()
    if not bridge.wait_connected(10):
        raise RuntimeError(f"the bridge could not connect: {broker.log_text()}")

    published: dict[str, float] = {}
    lock = threading.Lock()

    def publish(share: list[tuple[str, str]], index: int) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=publisher_users[index],
                             protocol=mqtt.MQTTv311)
        client.username_pw_set(publisher_users[index], publisher_password)
        client.max_inflight_messages_set(100)
        client.connect("127.0.0.1", broker.port, keepalive=60)
        client.loop_start()
        started = time.perf_counter()
        last = None
        for n, (device_id, key) in enumerate(share):
            if rate > 0:
                delay = started + n / (rate / publishers) - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            body = _body(device_id, 1, "heartbeat", None)
            signature = hmac.new(bytes.fromhex(key), body, hashlib.sha256).hexdigest()
            with lock:
                published[device_id] = time.time()
            last = client.publish(topics.uplink(device_id), signature.encode() + b"\n" + body,
                                  qos=1)
        if last is not None:
            last.wait_for_publish(timeout_s)
        client.disconnect()
        client.loop_stop()

    shares = [fleet[i::publishers] for i in range(publishers)]
    started = time.time()
    threads = [threading.Thread(target=publish, args=(share, i)) for i, share in enumerate(shares)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deadline = time.time() + timeout_s
    while len(seen) < devices and time.time() < deadline:
        time.sleep(0.05)
    finished = max(seen.values(), default=time.time())
    stop.set()
    listener.join(timeout=5)
    subscription.close()
    bridge.stop()
    broker.stop()
    stored, dialect = bench_db.stored_messages(), bench_db.dialect
    bench_db.release()

    latencies = [seen[d] - published[d] for d in seen if d in published]
    elapsed = finished - started
    return {
        "transport": "mqtt (mosquitto, QoS 1, bridge in process)", "database": dialect,
        "devices": devices, "messages": devices, "elapsed_s": round(elapsed, 2),
        "messages_per_s": round(len(seen) / elapsed, 1) if elapsed > 0 else None,
        "stored": stored, "events": len(seen), "lost": devices - min(stored, len(seen)),
        "publish_to_event_ms": {
            "p50": round(_percentile(latencies, 0.5) * 1000, 1),
            "p99": round(_percentile(latencies, 0.99) * 1000, 1),
            "max": round(max(latencies, default=float("nan")) * 1000, 1),
            "mean": round(statistics.fmean(latencies) * 1000, 1) if latencies else None},
        "offered_rate": rate or "flat out", "publishers": publishers,
        "bridge_workers": workers, "db_wait_ms": db_wait_ms,
        "cpus": os.cpu_count(), "load_average": [round(x, 1) for x in os.getloadavg()],
    }


def _slow_round_trips(engine, wait_s: float) -> None:
    """Each BEGIN, statement and COMMIT of `engine` waits `wait_s` first."""
    from sqlalchemy import event

    def wait(*_args, **_kwargs) -> None:
        time.sleep(wait_s)

    for name in ("begin", "before_cursor_execute", "commit"):
        event.listen(engine, name, wait)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1 "
                                         "(e.g. --workers 32)")
    return value


def _wait_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not milliseconds from 0 to 1000 "
                                         "(e.g. --db-wait-ms 4)")
    return value


@subcommand("mqtt-bench", help="MQTT ingest benchmark through a private Mosquitto")
def _configure(parser: argparse.ArgumentParser):
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--publishers", type=int, default=4, help="publishing connections")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="offered load in messages/s (default: as fast as possible)")
    parser.add_argument("--workers", type=_positive_int, default=None,
                        help="the bridge's worker lanes (default: as deployed)")
    parser.add_argument("--db-wait-ms", type=_wait_ms, default=0.0,
                        help="wait added to each database round trip (a busy machine, "
                             "made repeatable)")
    add_database_arguments(parser)

    def run(args: argparse.Namespace) -> int:
        for url in database_urls(args):
            print(json.dumps(run_mqtt_bench(args.devices, args.publishers, url, args.rate,
                                            workers=args.workers,
                                            db_wait_ms=args.db_wait_ms)))
        return 0

    return run
