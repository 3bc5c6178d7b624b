"""`tgd-server sms-gateway --port SERIAL`: run the AML SMS gateway against the server database."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from ..cli import Runner, subcommand


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
        from .. import create_app, db
        from .gateway import GatewayConfig, SmsGateway
        from .ingest_sms import ingest_aml_sms
        from .modem import AtModem

        app = create_app()
        if args.verbose:
            logging.getLogger("tgd.sms").setLevel(logging.DEBUG)
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        with app.app_context():
            factory = db.session_factory()

            def deliver(sender, text, received_at):
                return ingest_aml_sms(sender, text, received_at, factory=factory)

            gateway = SmsGateway(AtModem(args.port, args.baudrate), deliver,
                                 GatewayConfig(sweep_interval_s=args.sweep_interval))
            gateway.run(stop)
        logging.getLogger("tgd.sms.gateway").info("gateway stopped: %s", gateway.stats)
        return 0

    return run
