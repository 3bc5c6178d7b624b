"""Figures for the SMS channel and the cell table (a benchmark, not a test).

    python -m tgd_server.sms.bench [--sms 200] [--cells 200000] [--database-url URL]

- gateway: N AML SMS from 10 handsets submitted at once to an emulated SIM7600
  (fast timings) read by SmsGateway into the database: SMS/s from the first
  submission to the last commit, and how many were stored (must be all);
- cells: import of a synthetic OpenCelliD file of M rows (rows/s), then the
  median and p99 time of `locate()` for one and for three cells.

Needs the rig package (tgd_rig, installed with the project) for the emulator.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from .. import cells
from ..db import create_all, make_engine
from ..devices import register_device
from ..models import InboundSms
from .aml import build_aml
from .gateway import GatewayConfig, SmsGateway
from .ingest_sms import ingest_aml_sms
from .modem import AtModem

GATEWAY_NUMBER = "+687700100"


def bench_gateway(factory: sessionmaker, count: int) -> dict:
    from tgd_rig.emulator import Network, Sim7600Emulator, Timing

    handsets = []
    with factory() as session:
        for i in range(10):
            number = f"+6877519{i:02d}"
            register_device(session, {"device_id": f"BENCH{i:02d}", "special_number": number,
                                      "key": f"{i:02d}" * 32, "fw_version": "1.0.0"})
            handsets.append(number)
        session.commit()
    net = Network(timing=Timing.fast(0.01))
    net.start()
    modem = Sim7600Emulator(net, msisdn=GATEWAY_NUMBER, sms_capacity=30, name="gateway")
    senders = [Sim7600Emulator(net, msisdn=n) for n in handsets]
    stop = threading.Event()
    thread: threading.Thread | None = None
    try:
        modem.open(pwrkey_fifo=False)
        modem.power_on()
        for s in senders:
            s.open(pwrkey_fifo=False)
        net.wait_event("modem_boot", modem=GATEWAY_NUMBER)

        def deliver(sender, text, at):
            return ingest_aml_sms(sender, text, at, factory=factory)

        gateway = SmsGateway(AtModem(modem.port), deliver, GatewayConfig(sweep_interval_s=5.0))
        thread = threading.Thread(target=gateway.run, args=(stop,), daemon=True)
        thread.start()
        while gateway.stats.sweeps < 1:
            time.sleep(0.01)
        top = datetime.now(UTC).replace(microsecond=0)
        start = time.monotonic()
        for i in range(count):
            text = build_aml(lat=-22.27 - i / 10000, lon=166.45, radius_m=10,
                             time_of_positioning=top, confidence_pct=68, method="G",
                             imsi="546010000000001", imei="861234567890123", mcc="546",
                             mnc="01")
            net.call_in_loop(net.submit_sms, senders[i % len(senders)], GATEWAY_NUMBER, text,
                             i % 256, False)
        stored = 0
        deadline = start + 60 + count
        while stored < count and time.monotonic() < deadline:
            time.sleep(0.05)
            with factory() as session:
                stored = session.scalar(select(func.count()).select_from(InboundSms))
        elapsed = time.monotonic() - start
        return {"sms": count, "stored": stored, "seconds": round(elapsed, 2),
                "sms_per_s": round(stored / elapsed, 1), "storage_full_seen": modem.sms_store.used,
                "stats": vars(gateway.stats)}
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=10)
        modem.close()
        for s in senders:
            s.close()
        net.stop()


def bench_cells(factory: sessionmaker, rows: int, workdir: Path) -> dict:
    rng = random.Random(5)
    path = workdir / "cells.csv"
    keys = []
    with path.open("w") as handle:
        handle.write(",".join(cells.CSV_COLUMNS) + "\n")
        for i in range(rows):
            area, cell = 1000 + i // 500, 100000 + i
            keys.append((area, cell))
            handle.write(f"LTE,546,1,{area},{cell},0,{164 + rng.random() * 4:.5f},"
                         f"{-22.7 + rng.random() * 2.5:.5f},{rng.randint(300, 9000)},"
                         f"{rng.randint(1, 200)},1,1704067200,1767225600,-90\n")
    with factory() as session:
        start = time.monotonic()
        report = cells.import_csv(session, path)
        import_s = time.monotonic() - start
    timings = {1: [], 3: []}
    with factory() as session:
        for n in (1, 3):
            for _ in range(500):
                picked = [rng.choice(keys) for _ in range(n)]
                query = [{"rat": "LTE", "mcc": 546, "mnc": 1, "lac": a, "ci": c} for a, c in picked]
                t = time.perf_counter()
                cells.locate(session, query)
                timings[n].append((time.perf_counter() - t) * 1000)

    def p(values, q):
        return round(sorted(values)[int(q * (len(values) - 1))], 3)

    return {"rows": rows, "inserted": report.inserted, "import_s": round(import_s, 2),
            "rows_per_s": round(rows / import_s),
            "locate_1_cell_ms": {"p50": round(statistics.median(timings[1]), 3),
                                 "p99": p(timings[1], 0.99)},
            "locate_3_cells_ms": {"p50": round(statistics.median(timings[3]), 3),
                                  "p99": p(timings[3], 0.99)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sms", type=int, default=200)
    parser.add_argument("--cells", type=int, default=200_000)
    parser.add_argument("--database-url", default=None,
                        help="default: a fresh SQLite file (a PostgreSQL URL must be an empty database)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tgd-sms-bench-") as tmp:
        workdir = Path(tmp)
        engine = make_engine(args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}")
        create_all(engine)
        factory = sessionmaker(bind=engine, expire_on_commit=False)
        print("database:", engine.dialect.name)
        print("gateway:", bench_gateway(factory, args.sms))
        print("cells:", bench_cells(factory, args.cells, workdir))
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
