"""Ingest benchmark: `tgd-server bench` (also bench/ingest_bench.py).

Registers N simulated devices, starts the real server, and drives it from
client processes that POST signed heartbeats and alarms (an alarm and its
position updates for a fraction of the devices) over keep-alive connections;
the requests are signed and built before the timed run, and sent by a lean
socket client, so that the clients take little of the CPU the server needs.
The server is either gunicorn with N workers (`--workers N`, the production
server; a probe in each worker subscribes to the event bus, bench_probe.py) or
the Flask app behind Werkzeug's threaded server in the bench process. Reports
messages per second, the latency from the moment a message enters ingest to its
`device.updated` event on the console stream (events.subscribe()), HTTP
round-trip times, CPU per message (server, its writer threads, the clients, a
local PostgreSQL), and checks that nothing was lost: every message answered 200,
stored once, and seen on the stream once.

This is a benchmark, not a test: it prints figures and never asserts on time.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import multiprocessing
import os
import secrets
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from .cli import subcommand

INGEST_PATH = "/api/v1/device/messages"


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(fraction * len(ordered))) - 1))
    return ordered[index]


def _plan(devices: list[tuple[str, str]], alarm_fraction: float,
          positions_per_alarm: int) -> list[tuple[str, str, int, str, str | None]]:
    """(device_id, key, seq, type, aid) in sending order: interleaved across devices."""
    plan = []
    alarm_every = max(1, round(1 / alarm_fraction)) if alarm_fraction > 0 else 0
    for device_id, key in devices:
        plan.append((device_id, key, 1, "heartbeat", None))
    for index, (device_id, key) in enumerate(devices):
        if alarm_every and index % alarm_every == 0:
            aid = secrets.token_hex(4)
            plan.append((device_id, key, 2, "alarm", aid))
            for n in range(positions_per_alarm):
                plan.append((device_id, key, 3 + n, "position", aid))
    return plan


def _body(device_id: str, seq: int, type_: str, aid: str | None) -> bytes:
    now = int(time.time())
    message = {"v": 1, "dev": device_id, "seq": seq, "type": type_, "t": now,
               "fix": {"m": "G", "lat": -22.27 + seq * 1e-4, "lon": 166.45, "acc": 8, "t": now},
               "cell": {"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 4352, "ci": 20481},
               "bat": 3900, "csq": 20, "fw": "1.0.0"}
    if aid is not None:
        message["aid"] = aid
        message["ch"] = {"call": "active", "sms": "sent"}
    if type_ == "alarm":
        message["at"] = now - 1
    return json.dumps(message, separators=(",", ":")).encode()


def _signed_request(host: str, port: int, key: str, body: bytes) -> bytes:
    """The whole HTTP/1.1 request of one message, signed (built before the timed run)."""
    signature = hmac.new(bytes.fromhex(key), body, hashlib.sha256).hexdigest()
    return (f"POST {INGEST_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nX-TGD-Signature: {signature}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _presign(host: str, port: int, items: list) -> list[bytes]:
    return [_signed_request(host, port, key, _body(device_id, seq, type_, aid))
            for device_id, key, seq, type_, aid in items]


class _Connection:
    """A keep-alive HTTP/1.1 connection that sends prepared requests and reads answers
    with Content-Length: a lean client, so that the clients take little of the CPU the
    server needs (http.client parses every answer's headers with the email package)."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.sock = None
        self.buffer = b""

    def exchange(self, request: bytes) -> int:
        """Send one request, read its answer; the status code."""
        if self.sock is None:
            import socket

            self.sock = socket.create_connection(self.address, timeout=60)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buffer = b""
        self.sock.sendall(request)
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._fill()
        head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
        lines = head.split(b"\r\n")
        status = int(lines[0].split(None, 2)[1])
        length, close = None, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"  # Werkzeug's server does not keep alive
        if length is None:
            raise OSError("answer without Content-Length")
        while len(self.buffer) < length:
            self._fill()
        self.buffer = self.buffer[length:]
        if close:
            self.close()
        return status

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise OSError("connection closed by the server")
        self.buffer += chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _client_worker(host: str, port: int, work: list[bytes], concurrency: int, results,
                   rate: float = 0.0) -> None:
    """One client process: `concurrency` threads, one keep-alive connection each, sending
    the prepared requests of `work` in order.

    `rate` > 0 paces this process to that many messages per second (an offered
    load, so latencies show processing rather than queueing); 0 sends flat out.
    """
    lock = threading.Lock()
    start = time.perf_counter()
    position = [0]
    statuses: dict[int, int] = {}
    rtts: list[float] = []

    def next_item():
        with lock:
            if position[0] >= len(work):
                return None
            index = position[0]
            item = work[index]
            position[0] += 1
        if rate > 0:
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        return item

    def run():
        connection = _Connection(host, port)
        local_rtts, local_statuses = [], {}
        while (request := next_item()) is not None:
            started = time.perf_counter()
            status = 0
            for _attempt in range(3):
                try:
                    status = connection.exchange(request)
                    break
                except (OSError, ValueError, IndexError):
                    connection.close()  # the next attempt connects again
            local_rtts.append(time.perf_counter() - started)
            local_statuses[status] = local_statuses.get(status, 0) + 1
        connection.close()
        with lock:
            rtts.extend(local_rtts)
            for status, n in local_statuses.items():
                statuses[status] = statuses.get(status, 0) + n

    threads = [threading.Thread(target=run) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put({"statuses": statuses, "rtts": rtts})


def _register_devices(app, count: int) -> list[tuple[str, str]]:
    from sqlalchemy import insert

    from . import db
    from .models import Device

    devices = [(f"B{n:05d}", secrets.token_hex(32)) for n in range(count)]
    with app.app_context(), db.write_session() as session:
        session.execute(insert(Device), [
            {"id": d, "special_number": f"+68790{n:05d}", "key_hex": k, "imei": "", "iccid": "",
             "fw_version": "1.0.0", "heartbeat_interval_s": 1800, "low_battery_mv": 3550,
             "seq_high": 0, "seq_bitmap": 0, "low_battery": False}
            for n, (d, k) in enumerate(devices)])
    return devices


def _pg_schema(url: str) -> tuple[str, str]:
    """A fresh schema in the PostgreSQL database at `url`: (url with search_path, schema)."""
    from sqlalchemy import create_engine, text

    from .db import normalise_url

    schema = "bench_" + uuid.uuid4().hex[:8]
    engine = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}", schema


def _drop_pg_schema(url: str, schema: str) -> None:
    from sqlalchemy import create_engine, text

    from .db import normalise_url

    engine = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


class BenchDatabase:
    """A migrated app on a throwaway database: a temporary SQLite file, or a fresh
    schema in the PostgreSQL database at `database_url` (dropped by release())."""

    def __init__(self, prefix: str, database_url: str | None) -> None:
        from . import create_app, db, migrate

        self.workdir = Path(tempfile.mkdtemp(prefix=prefix))
        self._pg: tuple[str, str] | None = None
        if database_url and database_url.startswith("postgres"):
            url, schema = _pg_schema(database_url)
            self._pg = (database_url, schema)
            database_url = url
        self.url = database_url or f"sqlite:///{self.workdir / 'bench.sqlite3'}"
        self.app = create_app({"TGD_DATABASE_URL": self.url, "TGD_VAR_DIR": str(self.workdir),
                               "SECRET_KEY": "bench", "TGD_EVENTS_PG": False})
        with self.app.app_context():
            migrate.upgrade(db.engine())

    @property
    def dialect(self) -> str:
        return self.app.extensions["tgd_engine"].dialect.name

    def stored_messages(self) -> int:
        from sqlalchemy import func, select

        from . import db
        from .models import DeviceMessage

        with self.app.app_context():
            return db.get_session().scalar(select(func.count()).select_from(DeviceMessage))

    def release(self, keep: bool = False) -> None:
        self.app.extensions["tgd_engine"].dispose()
        if keep:
            return
        if self._pg is not None:
            _drop_pg_schema(*self._pg)
        shutil.rmtree(self.workdir, ignore_errors=True)


class _InProcessServer:
    """The app behind Werkzeug's threaded HTTP/1.1 server, in this process."""

    def __init__(self, app) -> None:
        from werkzeug.serving import WSGIRequestHandler, make_server

        WSGIRequestHandler.protocol_version = "HTTP/1.1"  # keep-alive, as a modem does
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()


class _GunicornServer:
    """gunicorn (the production server) with `workers` gthread workers; each worker's
    probe (bench_probe.py) records the events it published."""

    def __init__(self, database_url: str, workdir: Path, workers: int, threads: int,
                 events_pg: bool = False) -> None:
        import socket
        import subprocess
        import sys

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.out = workdir / "probe"
        self.out.mkdir()
        env = {**os.environ, "TGD_DATABASE_URL": database_url, "TGD_VAR_DIR": str(workdir),
               "TGD_SECRET_KEY": "bench", "TGD_EVENTS_PG": "1" if events_pg else "0",
               "TGD_BENCH_OUT": str(self.out)}
        self.events_pg = events_pg
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self._process = subprocess.Popen(
            [str(gunicorn), "--config", "python:tgd_server.bench_probe",
             "--workers", str(workers), "--threads", str(threads),
             "--bind", f"127.0.0.1:{self.port}", "--log-level", "warning",
             "tgd_server:create_app()"], env=env)
        deadline = time.time() + 30
        while time.time() < deadline:  # every worker's probe subscribed (and listening)
            if len(list(self.out.glob("ready-*"))) >= workers:
                return
            time.sleep(0.1)
        raise RuntimeError("gunicorn did not start")

    def events_seen(self) -> list[tuple]:
        """Stop gunicorn (its workers write their probes) and read what they saw."""
        if self.events_pg:
            time.sleep(1.0)  # the last events cross to the other workers' probes
        self._process.terminate()
        self._process.wait(timeout=60)
        seen: list[tuple] = []
        for path in sorted(self.out.glob("events-*.json")):
            seen.extend(tuple(row) for row in json.loads(path.read_text()))
            if self.events_pg:
                # Every worker's probe saw every event (its own, the others' through
                # LISTEN/NOTIFY), as a console tab on any worker does: one probe counts.
                break
        return seen

    def thread_cpu(self) -> dict[str, float]:
        """The workers' CPU seconds by thread kind (bench_probe.thread_cpu), summed."""
        totals: dict[str, float] = {}
        for path in self.out.glob("threads-*.json"):
            for kind, seconds in json.loads(path.read_text()).items():
                totals[kind] = totals.get(kind, 0.0) + seconds
        return totals


def run_bench(devices: int = 10_000, alarm_fraction: float = 0.1, positions_per_alarm: int = 2,
              clients: int = 2, concurrency: int = 16, database_url: str | None = None,
              keep: bool = False, workers: int = 0, rate: float = 0.0,
              threads: int = 0, events_pg: bool = False) -> dict:
    """Returns the report (see the module docstring). `workers` 0: Werkzeug in this
    process; N: gunicorn with N workers of `threads` threads (0: one per connection)."""
    import logging

    from . import events

    bench_db = BenchDatabase("tgd-bench-", database_url)
    app, workdir = bench_db.app, bench_db.workdir
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    plan = _plan(_register_devices(app, devices), alarm_fraction, positions_per_alarm)

    seen: list[tuple] = []
    stop = threading.Event()
    if workers:
        threads = threads or clients * concurrency
        server = _GunicornServer(bench_db.url, workdir, workers, threads,
                                 events_pg=events_pg and bench_db.dialect == "postgresql")
        listener = None
    else:
        server = _InProcessServer(app)
        subscription = events.subscribe()

        def listen():
            while True:
                event = subscription.get(timeout=0.2)
                if event is None:
                    if stop.is_set():
                        return
                    continue
                if event.get("type") == "device.updated":
                    seen.append((event["device_id"], event.get("message_type"),
                                 event["ingested_at"], time.time()))

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()

    # Heartbeats first (every device), then the alarm flows; a device's alarm flow stays
    # in one client process, in order, as a handset sends in sequence.
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    heartbeats = [p for p in plan if p[3] == "heartbeat"]
    by_device: dict[str, list] = {}
    for item in plan:
        if item[3] != "heartbeat":
            by_device.setdefault(item[0], []).append(item)
    # Signed before the timed run: the clients only send and read.
    phases = [[_presign("127.0.0.1", server.port, share) for share in shares]
              for shares in ([heartbeats[i::clients] for i in range(clients)],
                             _split_keep_device_order(by_device, clients))]
    started = time.perf_counter()
    cpu_started = time.process_time()
    children_started = _children_cpu()
    postgres_started = _postgres_cpu() if bench_db.dialect == "postgresql" else None
    collected = []
    for shares in phases:
        processes = [context.Process(target=_client_worker,
                                     args=("127.0.0.1", server.port, share, concurrency,
                                           results, rate / clients))
                     for share in shares if share]
        for process in processes:
            process.start()
        for _ in processes:
            collected.append(results.get())
        for process in processes:
            process.join()
    elapsed = time.perf_counter() - started
    server_cpu = time.process_time() - cpu_started  # in-process mode: the server's CPU
    client_cpu = _children_cpu() - children_started  # the client processes, reaped
    postgres_ended = _postgres_cpu() if postgres_started is not None else None
    # PostgreSQL's own CPU (when it runs on this machine), from the first to the last answer
    database_cpu = (postgres_ended - postgres_started
                    if postgres_started is not None and postgres_ended is not None else None)

    threads_cpu: dict[str, float] = {}
    if workers:
        before_gunicorn = _children_cpu()
        seen = server.events_seen()
        server_cpu = _children_cpu() - before_gunicorn  # gunicorn and its workers, reaped
        threads_cpu = server.thread_cpu()
    else:
        deadline = time.time() + 10
        while len(seen) < len(plan) and time.time() < deadline:
            time.sleep(0.05)
        stop.set()
        listener.join(timeout=5)
        subscription.close()
        server.stop()

    statuses: dict[int, int] = {}
    rtts: list[float] = []
    for result in collected:
        rtts.extend(result["rtts"])
        for status, n in result["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    stored, dialect = bench_db.stored_messages(), bench_db.dialect
    bench_db.release(keep=keep)

    latencies = [arrived - ingested for _dev, _type, ingested, arrived in seen]
    keys: dict[tuple, int] = {}
    for dev, type_, ingested, _arrived in seen:
        keys[(dev, type_, ingested)] = keys.get((dev, type_, ingested), 0) + 1
    return {
        "database": dialect, "devices": devices, "messages": len(plan),
        "elapsed_s": round(elapsed, 2), "messages_per_s": round(len(plan) / elapsed, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "stored": stored, "events": len(seen),
        "duplicate_events": sum(1 for n in keys.values() if n > 1),
        "lost": len(plan) - min(stored, len(keys), statuses.get(200, 0)),
        "event_latency_ms": {"p50": _ms(_percentile(latencies, 0.5)),
                             "p99": _ms(_percentile(latencies, 0.99)),
                             "max": _ms(max(latencies, default=float("nan"))),
                             "mean": _ms(statistics.fmean(latencies)) if latencies else None},
        "http_rtt_ms": {"p50": _ms(_percentile(rtts, 0.5)), "p99": _ms(_percentile(rtts, 0.99))},
        "server_cpu_ms_per_msg": round(server_cpu / len(plan) * 1000, 2),
        "client_cpu_ms_per_msg": round(client_cpu / len(plan) * 1000, 2),
        "database_cpu_ms_per_msg": (round(database_cpu / len(plan) * 1000, 2)
                                    if database_cpu is not None else None),
        # The workers' CPU (start-up included) and their ingest writers' part of it.
        "server_thread_cpu_ms_per_msg": {kind: round(seconds / len(plan) * 1000, 3)
                                         for kind, seconds in sorted(threads_cpu.items())},
        "server": f"gunicorn {workers} worker(s) x {threads} threads" if workers
        else "werkzeug threaded, in process",
        "events_pg": bool(workers and events_pg and dialect == "postgresql"),
        "offered_rate": rate or "flat out", "clients": clients, "concurrency": concurrency,
        "cpus": os.cpu_count(), "load_average": [round(x, 1) for x in os.getloadavg()],
    }


def _postgres_cpu() -> float | None:
    """CPU seconds of the local PostgreSQL server's processes (their exited backends
    included: they are the postmaster's reaped children); None if none can be read."""
    total, found = 0.0, False
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        name, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat.rsplit(")", 1)[1].split()
        if name.startswith("postgres"):
            found = True
            total += sum(int(value) for value in fields[11:15]) / ticks
    return total if found else None


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _split_keep_device_order(by_device: dict[str, list], parts: int) -> list[list]:
    """Each device's alarm flow goes to one process, in order (a handset sends in sequence)."""
    shares: list[list] = [[] for _ in range(parts)]
    flows = list(by_device.values())
    for index, flow in enumerate(flows):
        shares[index % parts].extend(flow)
    return shares


def add_database_arguments(parser: argparse.ArgumentParser) -> None:
    """--database-url and --both, shared by the benchmarks."""
    parser.add_argument("--database-url", default=None,
                        help="default: a temporary SQLite file; postgresql://... uses a fresh "
                             "schema that is dropped afterwards")
    parser.add_argument("--both", action="store_true",
                        help="run on SQLite, then on PostgreSQL at TGD_TEST_PG_URL or "
                             "127.0.0.1:5432/test")


def database_urls(args: argparse.Namespace) -> list[str | None]:
    """The databases a benchmark runs on (None: a temporary SQLite file)."""
    if args.both:
        return [None, os.environ.get("TGD_TEST_PG_URL",
                                     "postgresql+psycopg://postgres@127.0.0.1:5432/test")]
    return [args.database_url]


@subcommand("bench", help="ingest benchmark: signed messages from simulated devices, figures")
def _configure(parser: argparse.ArgumentParser):
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--alarm-fraction", type=float, default=0.1,
                        help="share of devices that also send an alarm and its positions")
    parser.add_argument("--positions", type=int, default=2, help="position updates per alarm")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="connections per client (each handset has its own; "
                             "2 x 16 fills the writer's batches)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="offered load in messages/s (default: as fast as the server goes)")
    parser.add_argument("--workers", type=int, default=1,
                        help="gunicorn worker processes (default 1, the SQLite deployment); "
                             "0 runs the app behind Werkzeug in the bench process")
    parser.add_argument("--threads", type=int, default=0,
                        help="gunicorn threads per worker (default: one per client connection)")
    parser.add_argument("--events-pg", action="store_true",
                        help="PostgreSQL: console events through LISTEN/NOTIFY as in production "
                             "(TGD_EVENTS_PG), latency measured by one worker's probe")
    add_database_arguments(parser)

    def run(args: argparse.Namespace) -> int:
        for url in database_urls(args):
            report = run_bench(args.devices, args.alarm_fraction, args.positions, args.clients,
                               args.concurrency, url,
                               workers=args.workers, rate=args.rate, threads=args.threads,
                               events_pg=args.events_pg)
            print(json.dumps(report))
        return 0

    return run
