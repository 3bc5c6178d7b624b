"""The SMS gateway as a command, or as a thread of the web server's process.

    tgd-server sms-gateway --port SERIAL        its own process (PostgreSQL deployments)
    tgd-server run --sms-gateway SERIAL         inside the web server (SQLite, one process)

Live console events cross processes only on PostgreSQL (LISTEN/NOTIFY, enabled by
create_app); on SQLite an alarm opened by SMS in another process reaches open
console pages only at their periodic resync, so run the gateway inside the server.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from ..cli import Runner, subcommand

log = logging.getLogger("tgd.sms.gateway")
STATUS_FILE = "sms-gateway.json"  # in TGD_VAR_DIR: state, last_ok_at, storage, stats


def make_gateway(app, port: str, baudrate: int = 115200, sweep_interval_s: float = 60.0):
    """A gateway on `port` that stores into `app`'s database."""
    from .. import db
    from .gateway import GatewayConfig, SmsGateway
    from .ingest_sms import ingest_aml_sms
    from .modem import AtModem

    with app.app_context():
        factory = db.session_factory()

    def deliver(sender, text, received_at):
        return ingest_aml_sms(sender, text, received_at, factory=factory)

    status_path = Path(app.config["TGD_VAR_DIR"]) / STATUS_FILE
    status_path.parent.mkdir(parents=True, exist_ok=True)
    return SmsGateway(AtModem(port, baudrate), deliver,
                      GatewayConfig(sweep_interval_s=sweep_interval_s, status_path=status_path))


def start_in_process(app, port: str, baudrate: int = 115200,
                     sweep_interval_s: float = 60.0) -> threading.Event:
    """Run the gateway in a daemon thread of this process; set the returned event to stop."""
    gateway = make_gateway(app, port, baudrate, sweep_interval_s)
    stop = threading.Event()
    threading.Thread(target=gateway.run, args=(stop,), name="sms-gateway", daemon=True).start()
    log.info("SMS gateway thread started on %s", port)
    return stop


@subcommand("sms-gateway", help="receive the handsets' AML SMS on a SIM7600 (pyserial)")
def _configure_sms_gateway(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument("--port", required=True,
                        help="serial device or pyserial URL of the gateway modem "
                             "(/dev/ttyUSB2, socket://host:port, a pty)")
    parser.add_argument("--baudrate", type=int, default=115200)
    parser.add_argument("--sweep-interval", type=float, default=60.0,
                        help="seconds between two AT+CMGL sweeps (catches lost +CMTI)")
    parser.add_argument("--verbose", action="store_true", help="log every modem line")

    def run(args: argparse.Namespace) -> int:
        from .. import create_app

        app = create_app()
        if args.verbose:
            logging.getLogger("tgd.sms").setLevel(logging.DEBUG)
        if app.config["TGD_DATABASE_URL"].startswith("sqlite"):
            log.warning("SQLite: console pages of the web server process learn of alarms "
                        "opened here only at their periodic resync; prefer "
                        "`tgd-server run --sms-gateway %s`", args.port)
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        gateway = make_gateway(app, args.port, args.baudrate, args.sweep_interval)
        gateway.run(stop)
        log.info("gateway stopped: %s", gateway.stats)
        return 0

    return run
