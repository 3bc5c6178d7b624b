"""`tgd-rig emulator`: one SIM7600 emulator on a pty, on the emulated OPT-NC network.

For practising the bench procedure without hardware (docs/technician.md): the
emulator prints its pty and PWRKEY FIFO, which `tgd-flash virtual-board --uart
PTY --pwrkey FIFO` takes, and runs until Ctrl-C. The police (17) answer calls.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import TextIO

from .errors import RigError


def add_emulator_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("emulator", help="run one SIM7600 emulator on a pty until Ctrl-C "
                                        "(for tgd-flash virtual-board --uart)")
    p.add_argument("--msisdn", default="+687751001", help="the SIM's number (default +687751001)")
    p.add_argument("--imei", default="866123045678901", help="15 digits")
    p.add_argument("--iccid", default="8968701000000123456F", help="18 to 22 digits")
    p.add_argument("--timing", choices=("realistic", "fast"), default="realistic",
                   help="network and modem delays (default: a real LTE network)")
    p.add_argument("--off", action="store_true",
                   help="start switched off (the firmware switches it on with PWRKEY)")
    p.add_argument("--indoor", action="store_true", help="no GNSS fix")


def cmd_emulator(args: argparse.Namespace, out: TextIO | None = None,
                 stop: threading.Event | None = None) -> int:
    from .emulator import Network, Sim7600Emulator, Timing

    out = out or sys.stdout
    stop = stop or threading.Event()
    timing = Timing.fast(0.05) if args.timing == "fast" else Timing.realistic()
    net = Network(timing=timing)
    try:
        modem = Sim7600Emulator(net, msisdn=args.msisdn, imei=args.imei, iccid=args.iccid,
                                indoor=args.indoor)
    except ValueError as exc:  # the emulator names the field: --msisdn, --imei or --iccid
        raise RigError(f"--{str(exc).split()[0]}: {exc}") from None
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    net.start()
    try:
        net.add_police("17")
        modem.open(pwrkey_fifo=True)
        if not args.off:
            modem.power_on()
        state = "switched off (PWRKEY switches it on)" if args.off else "switched on"
        print(f"SIM7600 emulator on {modem.port} (PWRKEY FIFO {modem.pwrkey_path}), "
              f"SIM {args.msisdn}, {state}; Ctrl-C to stop", file=out, flush=True)
        print(f"next: tgd-flash virtual-board --flash-dir /tmp/handset --uart {modem.port} "
              f"--pwrkey {modem.pwrkey_path}", file=out, flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        modem.close()
        net.stop()
    print("emulator stopped", file=out, flush=True)
    return 0
