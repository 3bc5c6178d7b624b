"""How fast the emulator answers through its pty, and what its realistic profile gives
(figures, not tests).

    .venv/bin/python -m tgd_rig.emulator.bench [--count 500]
    .venv/bin/python -m tgd_rig.emulator.bench --realistic     # ~1 minute

The first prints the median and 99th percentile round trip of a few commands, seen
by a pyserial user on the same machine: the emulator's own overhead on top of the
delays that Timing adds. The second walks one handset through Timing.realistic():
power-on to RDY, registration, GNSS cold and hot start, an HTTP POST to a local
server, an SMS submit and its delivery report, a call answered after 3 s.
"""

from __future__ import annotations

import argparse
import statistics
import time

from .client import AtClient, boot
from .modem import Sim7600Emulator
from .network import Network
from .timing import Timing
from .track import Track


def realistic() -> None:
    import http.server
    import threading

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/m"
    net = Network(timing=Timing.realistic())
    net.start()
    net.add_police("17", answer_after_s=3.0)
    net.add_sms_sink("+687700100")
    modem = Sim7600Emulator(net, msisdn="+687751001", track=Track.fixed(-22.2758, 166.458))
    modem.open()
    figures: list[tuple[str, float]] = []

    def timed(name: str, start: float) -> None:
        figures.append((name, time.monotonic() - start))

    try:
        client = AtClient(modem.port, modem.transcript)
        t = time.monotonic()
        modem.power_on()
        client.expect(b"PB DONE\r\n", 20)
        timed("power-on -> RDY", t)
        net.wait_event("registration", 20, since=t, stat=1)
        timed("power-on -> registered", t)
        client.command("ATE0")
        for command in ("AT+CMGF=1", "AT+CSMP=49,167,0,0", "AT+CNMI=2,1,0,1,0", "AT+CLCC=1"):
            client.command(command)
        for start in ("cold", "hot"):
            t = time.monotonic()
            client.command("AT+CGPS=1")
            while client.command("AT+CGNSSINFO").startswith(b"\r\n+CGNSSINFO: ,"):
                time.sleep(0.1)
            timed(f"GNSS {start} start -> fix (polled 10 Hz)", t)
            client.command("AT+CGPS=0")
            client.expect(b"+CGPS: 0\r\n", 5)
        client.command("AT+HTTPINIT")
        client.command(f'AT+HTTPPARA="URL","{url}"')
        client.send("AT+HTTPDATA=2,5000")
        client.expect(b"DOWNLOAD\r\n")
        client.write(b"{}")
        client.expect(b"OK\r\n")
        t = time.monotonic()
        client.command("AT+HTTPACTION=1")
        client.expect(b"+HTTPACTION: 1,200,2\r\n", 60)
        timed("HTTPACTION -> +HTTPACTION", t)
        client.command("AT+HTTPTERM")
        t = time.monotonic()
        client.send('AT+CMGS="+687700100"')
        client.expect(b"> ")
        client.write(b"bench\x1a")
        client.expect(b"OK\r\n", 20)
        timed("CMGS -> +CMGS", t)
        client.expect(b"+CDS: ", 20)
        timed("CMGS -> +CDS", t)
        t = time.monotonic()
        client.command("ATD17;")
        client.expect(b"VOICE CALL: BEGIN\r\n", 30)
        timed("ATD -> VOICE CALL: BEGIN (police answers after 3 s)", t)
        client.command("AT+CHUP")
        client.close()
    finally:
        net.stop()
        server.shutdown()
    for name, seconds in figures:
        print(f"{name:52} {seconds:7.3f} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--realistic", action="store_true")
    args = parser.parse_args(argv)
    if args.realistic:
        realistic()
        return
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
