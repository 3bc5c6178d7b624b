"""`tgd-server`: the server's console script, a registry of subcommands.

    tgd-server run [--host 127.0.0.1] [--port 8080]   development server
    tgd-server bench [...]                            ingest benchmark (bench/ingest_bench.py)
    tgd-server admin <flask command ...>              the admin commands (init-db, create-user...)

Another part adds a subcommand by writing a module that decorates a function with
`@subcommand("name", help=...)` (the function receives an argparse subparser to
configure and returns the function that runs it) and listing the module in
`EXTENSION_MODULES`. A listed module that is not there is skipped.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

Runner = Callable[[argparse.Namespace], int | None]
Configurer = Callable[[argparse.ArgumentParser], Runner]

_REGISTRY: dict[str, tuple[str, Configurer]] = {}

EXTENSION_MODULES = (
    "tgd_server.sms.cli",
    "tgd_server.mqtt.cli",
    "tgd_server.bench",
    "tgd_server.probe.cli",
    "tgd_server.console.cli",
    "tgd_server.ota_cli",
)


def subcommand(name: str, help: str) -> Callable[[Configurer], Configurer]:
    def register(configure: Configurer) -> Configurer:
        _REGISTRY[name] = (help, configure)
        return configure

    return register


def tcp_port(text: str) -> int:
    """An argparse type: a TCP port to listen on, 1 to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a TCP port: give 1 to 65535 (default 8080)")
    return port


@subcommand("run", help="run the development server (production: gunicorn, see docs/server.md)")
def _configure_run(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=tcp_port, default=8080, help="1 to 65535 (default 8080)")
    parser.add_argument("--init-db", action="store_true", help="run the migrations first")
    parser.add_argument("--sms-gateway", metavar="SERIAL",
                        help="also run the AML SMS gateway on this modem, in this process "
                             "(docs/sms-and-cells.md)")
    parser.add_argument("--mqtt-bridge", metavar="HOST:PORT",
                        help="also run the MQTT bridge to this broker, in this process "
                             "(password in TGD_MQTT_PASSWORD; docs/mqtt.md)")

    def run(args: argparse.Namespace) -> int:
        from . import create_app, db, migrate

        app = create_app()
        if args.init_db:
            with app.app_context():
                migrate.upgrade(db.engine())
        if args.sms_gateway:
            from .sms.cli import start_in_process

            start_in_process(app, args.sms_gateway)
        if args.mqtt_bridge:
            from .mqtt.cli import start_in_process as start_bridge

            start_bridge(app, args.mqtt_bridge)
        app.run(host=args.host, port=args.port, threaded=True, use_reloader=False)
        return 0

    return run


@subcommand("admin", help="the admin commands (same as `flask --app tgd_server ...`)")
def _configure_admin(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument("args", nargs=argparse.REMAINDER)

    def run(args: argparse.Namespace) -> int:
        from flask.cli import FlaskGroup

        from . import create_app

        group = FlaskGroup(create_app=create_app)
        return group.main(args=args.args, prog_name="tgd-server admin", standalone_mode=True)

    return run


def _load_extensions() -> None:
    for module in EXTENSION_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (no usage block) that says where the options are."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    _load_extensions()
    parser = _Parser(prog="tgd-server", description="TGD telemetry server")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, configure) in sorted(_REGISTRY.items()):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_run=configure(sub))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
