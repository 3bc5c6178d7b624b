"""Valid-message throughput during a hostile flood, as a ratio to the quiet rate, in
one run. Handsets send at their own pace, whatever else reaches the server; a flood
must not take that pace from them:

1. capacity: `senders` handsets send signed heartbeats as fast as they are answered;
2. quiet:    the same handsets send at `load` x that capacity (paced, together);
3. flood:    the same paced handsets while `flooders` send hostile cases as fast as
             they are answered (closed loop: the flood takes all the CPU it can).

ratio = valid messages stored per second in 3 / in 2. Each phase lasts `seconds`.
The answer times (p50, p99) of the valid messages in 2 and 3 are reported too.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from .hostile import PATH, Case, ProbeDevice, encode
from .http import Client, raw


@dataclass
class Phase:
    rate: float = 0.0  # valid messages stored per second
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    hostile: int = 0


@dataclass
class FloodResult:
    capacity: Phase = field(default_factory=Phase)
    quiet: Phase = field(default_factory=Phase)
    flood: Phase = field(default_factory=Phase)
    offered: float = 0.0
    valid_accepted: int = 0
    statuses: dict = field(default_factory=dict)  # status -> count, every request
    valid_refused: list = field(default_factory=list)  # (status, body) of a refused valid one
    hostile_accepted: list = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.flood.rate / self.quiet.rate if self.quiet.rate else 0.0


class _Shared:
    def __init__(self, result: FloodResult) -> None:
        self.result = result
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.measuring = False
        self.accepted = 0
        self.latencies: list[float] = []
        self.hostile = 0

    def count(self, status: int) -> None:
        with self.lock:
            self.result.statuses[status] = self.result.statuses.get(status, 0) + 1


def _send_valid(base_url: str, device: ProbeDevice, interval: float, shared: _Shared) -> None:
    client = Client(base_url)
    due = time.monotonic()
    try:
        while not shared.stop.is_set():
            if interval:
                due += interval
                wait = due - time.monotonic()
                if wait > 0:
                    shared.stop.wait(wait)
                    if shared.stop.is_set():
                        break
                else:
                    due = time.monotonic()  # late: no burst to catch up
            body = encode(device.message())
            sent = time.monotonic()
            status, _h, data = client.request("POST", PATH, body, {
                "Content-Type": "application/json", "X-TGD-Signature": device.sign(body)})
            took = time.monotonic() - sent
            shared.count(status)
            with shared.lock:
                if status == 200:
                    shared.result.valid_accepted += 1
                    if shared.measuring:
                        shared.accepted += 1
                        shared.latencies.append(took)
                elif len(shared.result.valid_refused) < 10:
                    shared.result.valid_refused.append((status, data[:200]))
    finally:
        client.close()


def send_case(client: Client, base_url: str, case: Case) -> int:
    if case.raw is not None:
        return raw(base_url, case.raw)
    try:
        status, _h, _b = client.request("POST", PATH, case.body, case.headers)
    except ValueError:  # a header http.client refuses to send
        return -1
    return status


def _send_hostile(base_url: str, cases: list[Case], offset: int, shared: _Shared) -> None:
    client = Client(base_url)
    index = offset
    try:
        while not shared.stop.is_set():
            case = cases[index % len(cases)]
            index += 1
            status = send_case(client, base_url, case)
            shared.count(status)
            with shared.lock:
                if shared.measuring:
                    shared.hostile += 1
                if status == 200 and len(shared.result.hostile_accepted) < 10:
                    shared.result.hostile_accepted.append(case.name)
    finally:
        client.close()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _phase(base_url: str, devices: list[ProbeDevice], interval: float, cases: list[Case],
           flooders: int, seconds: float, result: FloodResult) -> Phase:
    shared = _Shared(result)
    threads = [threading.Thread(target=_send_valid, args=(base_url, d, interval, shared))
               for d in devices]
    threads += [threading.Thread(target=_send_hostile, args=(base_url, cases, i * 7, shared))
                for i in range(flooders)]
    for thread in threads:
        thread.start()
    time.sleep(min(1.0, seconds / 5))  # warm up: connections, the writer thread
    with shared.lock:
        shared.measuring = True
    start = time.monotonic()
    time.sleep(seconds)
    with shared.lock:
        shared.measuring = False
        elapsed = time.monotonic() - start
        phase = Phase(shared.accepted / elapsed, _percentile(shared.latencies, 0.5),
                      _percentile(shared.latencies, 0.99), shared.hostile)
    shared.stop.set()
    for thread in threads:
        thread.join(timeout=60)
    return phase


def measure(base_url: str, devices: list[ProbeDevice], cases: list[Case], flooders: int,
            seconds: float, load: float = 0.5) -> FloodResult:
    # Raw cases cost a connection each, the 1 MB one the probe's own CPU: the hostile
    # part sends each of them once; the flood repeats the others in order.
    flood_cases = [c for c in cases if c.raw is None and len(c.body) < 8192]
    result = FloodResult()
    result.capacity = _phase(base_url, devices, 0.0, [], 0, seconds, result)
    result.offered = result.capacity.rate * load
    interval = len(devices) / result.offered if result.offered else 0.0
    result.quiet = _phase(base_url, devices, interval, [], 0, seconds, result)
    result.flood = _phase(base_url, devices, interval, flood_cases, flooders, seconds, result)
    return result
