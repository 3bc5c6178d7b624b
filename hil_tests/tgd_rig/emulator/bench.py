"""How fast the emulator answers through its pty (a figure, not a test).

    .venv/bin/python -m tgd_rig.emulator.bench [--count 500]

Prints the median and 99th percentile round trip of a few commands, seen by a
pyserial user on the same machine: the emulator's own overhead on top of the
delays that Timing adds.
"""

from __future__ import annotations

import argparse
import statistics
import time

from .client import boot
from .modem import Sim7600Emulator
from .network import Network
from .timing import Timing
from .track import Track


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args(argv)
    net = Network(timing=Timing.fast(0.01))
    net.start()
    modem = Sim7600Emulator(net, msisdn="+687751001", track=Track.fixed(-22.2758, 166.458))
    client = boot(modem)
    try:
        client.command("ATE0")
        client.command("AT+CGPS=1")
        time.sleep(0.4)
        for command in ("AT", "AT+CSQ", "AT+CPSI?", "AT+CGNSSINFO"):
            times = []
            for _ in range(args.count):
                start = time.perf_counter()
                client.command(command)
                times.append((time.perf_counter() - start) * 1000)
            times.sort()
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
            print(f"{command:14} n={args.count} median {statistics.median(times):.3f} ms"
                  f"  p99 {p99:.3f} ms")
    finally:
        client.close()
        net.stop()


if __name__ == "__main__":
    main()
