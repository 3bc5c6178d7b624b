"""`tgd-server mqtt-bridge` and `tgd-server mqtt-passwd`."""

from __future__ import annotations

import argparse
import os
import signal
import threading

from ..cli import Runner, subcommand


@subcommand("mqtt-bridge", help="feed device messages from an MQTT broker into the ingest core")
def _configure_bridge(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument("--host", default=os.environ.get("TGD_MQTT_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("TGD_MQTT_PORT", "1883")))
    parser.add_argument("--username", default=os.environ.get("TGD_MQTT_USER"),
                        help="the bridge's account (default: tgd-bridge, tgd-bridge-<k+1> for "
                             "partition k); the broker uses it as the client id")
    parser.add_argument("--password-env", default="TGD_MQTT_PASSWORD",
                        help="environment variable holding the bridge's password")
    parser.add_argument("--partition", type=_partition, default=(0, 1), metavar="K/N",
                        help="several bridge processes: this one handles partition K of N "
                             "(0/2 and 1/2 for two)")
    parser.add_argument("--tls-ca", default=None, help="CA file: connect with TLS")

    def run(args: argparse.Namespace) -> int:
        from .. import create_app
        from .bridge import Bridge, BrokerSettings

        app = create_app()
        from .topics import bridge_user

        bridge = Bridge(app, BrokerSettings(
            host=args.host, port=args.port,
            username=args.username or bridge_user(args.partition[0]),
            password=os.environ.get(args.password_env), partition=args.partition,
            tls_ca=args.tls_ca))
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        bridge.start()
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        bridge.stop()
        return 0

    return run


def _partition(text: str) -> tuple[int, int]:
    k, sep, n = text.partition("/")
    try:
        k_i, n_i = int(k), int(n)
    except ValueError:
        k_i = n_i = -1
    if not sep or not 0 <= k_i < n_i or n_i > 16:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not K/N with 0 <= K < N <= 16 (e.g. --partition 0/2)")
    return k_i, n_i


def _bridges(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 16:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bridges in 1..16")
    return int(text)


def start_in_process(app, address: str):
    """The bridge inside the web server's process (SQLite: live events stay in one process)."""
    from .bridge import Bridge, BrokerSettings

    host, _, port = address.rpartition(":")
    bridge = Bridge(app, BrokerSettings(host=host or "127.0.0.1", port=int(port or 1883),
                                        username=os.environ.get("TGD_MQTT_USER", "tgd-bridge"),
                                        password=os.environ.get("TGD_MQTT_PASSWORD")))
    bridge.start()
    return bridge


@subcommand("mqtt-passwd", help="write the Mosquitto password file: the bridge and every device")
def _configure_passwd(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument("--out", required=True, help="password file to (re)write")
    parser.add_argument("--bridge-password-env", default="TGD_MQTT_PASSWORD")
    parser.add_argument("--bridges", type=_bridges, default=1, metavar="N",
                        help="bridge accounts to write (tgd-bridge, tgd-bridge-2 ... "
                             "tgd-bridge-N), for --partition")

    def run(args: argparse.Namespace) -> int:
        from .. import create_app
        from .accounts import write_password_file

        app = create_app()
        with app.app_context():
            count = write_password_file(args.out, os.environ.get(args.bridge_password_env),
                                        bridges=args.bridges)
        print(f"mqtt-passwd: {count} accounts written to {args.out}")
        return 0

    return run




from . import bench as _bench  # noqa: E402,F401 - registers `tgd-server mqtt-bench`
