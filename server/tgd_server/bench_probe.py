"""A gunicorn configuration for `tgd-server bench --workers N`: a latency probe in
every worker.

Each worker subscribes to the event bus (events.subscribe(), as the console's
stream does) when it starts and, when it exits, writes what it saw to
`$TGD_BENCH_OUT/events-<pid>.json`: for each `device.updated` event, the device,
the message type, `ingested_at` and the time it reached the subscriber.
"""

import json
import os
import threading
import time

_seen: list[tuple] = []
_stop = threading.Event()
_thread: threading.Thread | None = None


def post_worker_init(worker) -> None:
    global _thread
    from tgd_server import events

    subscription = events.subscribe()
    bridge = events._pg_bridge
    if bridge is not None:  # LISTEN first: the other workers' first events must reach us
        bridge.listening.wait(10)
    out = os.environ.get("TGD_BENCH_OUT")
    if out:
        with open(os.path.join(out, f"ready-{os.getpid()}"), "w"):
            pass

    def listen() -> None:
        while not _stop.is_set():
            event = subscription.get(timeout=0.2)
            if event is not None and event.get("type") == "device.updated":
                _seen.append((event["device_id"], event.get("message_type"),
                              event["ingested_at"], time.time()))

    _thread = threading.Thread(target=listen, name="tgd-bench-probe", daemon=True)
    _thread.start()


def _cpu_seconds(stat_path: str) -> float:
    with open(stat_path) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of this worker: in all (`worker`, start-up included)
    and of its ingest writer thread (`writer`); the rest is HTTP, the app and events."""
    totals = {"worker": _cpu_seconds("/proc/self/stat"), "writer": 0.0}
    for thread in threading.enumerate():
        if thread.name.startswith("tgd-ingest-writer"):
            try:
                totals["writer"] += _cpu_seconds(f"/proc/self/task/{thread.native_id}/stat")
            except OSError:  # the thread just ended
                pass
    return totals


def worker_exit(server, worker) -> None:
    _stop.set()
    if _thread is not None:
        _thread.join(timeout=2)
    out = os.environ.get("TGD_BENCH_OUT")
    if out:
        with open(os.path.join(out, f"events-{os.getpid()}.json"), "w") as handle:
            json.dump(_seen, handle)
        with open(os.path.join(out, f"threads-{os.getpid()}.json"), "w") as handle:
            json.dump(thread_cpu(), handle)
