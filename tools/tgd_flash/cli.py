"""`tgd-flash` / `python tools/flash.py`: the technicians' bench tool.

    tgd-flash detect
    tgd-flash flash --image ESP32_GENERIC-v1.29.0.bin
    tgd-flash provision --device-id NC0001 --special-number +687751001 --sms-number +687700100 \
        --server https://tgd.opt.nc            (token in $TGD_TECH_TOKEN or --token-file)
    tgd-flash selftest --server https://tgd.opt.nc
    tgd-flash provision --batch handsets.csv --server ...

Every failure prints ``error: ...`` with what to do and exits non-zero (codes
in docs/technician.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from . import batch, commission, esp, flashing, image_cli, provision, release
from .errors import BoardError, FlashToolError, UsageError
from .serverapi import ServerTarget

TOKEN_ENV = "TGD_TECH_TOKEN"


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (no usage block) that says where the options are."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (`{self.prog} --help` lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tgd-flash", description="Flash, provision and self-test TGD handsets.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("detect", help="find the handset: chip, flash size, MAC, MicroPython")
    p.add_argument("--port", help="serial port (default: the only USB serial port)")

    p = sub.add_parser("virtual-board", help="serve a MicroPython unix-port board on socket:// (training, tests)")
    p.add_argument("--flash-dir", type=Path, required=True, help="directory used as the board's flash")
    p.add_argument("--uart", help="serial device of the modem (e.g. the SIM7600 emulator's pty)")
    p.add_argument("--pwrkey", help="PWRKEY FIFO of the emulated modem")

    p = sub.add_parser("flash", help="write MicroPython (esptool) and the TGD firmware (mpy-cross + mpremote)")
    _port_and_batch(p)
    p.add_argument("--image", type=Path, help="MicroPython .bin for the chip (omit to update only the TGD firmware)")
    p.add_argument("--chip", help="chip type (esp32, esp32s3, ...); detected when omitted")
    p.add_argument("--no-erase", action="store_true", help="write without erasing the whole flash first")
    p.add_argument("--firmware-dir", type=Path, help="TGD firmware sources (default: firmware/ of this checkout)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, change nothing")
    p.add_argument("--frozen", action="store_true",
                   help="the board's image freezes the firmware (route a): upload only main.py")

    p = sub.add_parser("provision", help="device key + config.json + registration on the server")
    _port_and_batch(p)
    p.add_argument("--host-dir", type=Path, help="write the config for a host-board handset into DIR instead")
    p.add_argument("--device-id")
    p.add_argument("--special-number", help="the handset's MSISDN, which the police recognise")
    p.add_argument("--sms-number", help="where AML SMS go")
    p.add_argument("--emergency-number", default="17")
    p.add_argument("--apn", help="the operator's packet data APN, e.g. mobilis (required; "
                   "--apn '' keeps the modem's default context)")
    p.add_argument("--transport", choices=("http", "mqtt"))
    p.add_argument("--mqtt-url", help="broker for transport mqtt, e.g. tcp://mqtt.tgd.opt.nc:8883")
    p.add_argument("--mqtt-tls", action="store_true", default=None,
                   help="connect to the broker with TLS (SIM7600 server_type 1)")
    p.add_argument("--device-url", help="URL the handset posts to (default: <server>/api/v1/device/messages)")
    for name in ("trigger-hold-ms", "heartbeat-interval-s", "track-interval-s", "call-retries", "alarm-timeout-s",
                 "callback-window-s"):
        p.add_argument(f"--{name}", type=int)
    p.add_argument("--police-number", dest="police_numbers", action="append",
                   help="a caller answered silently during an alarm and callback_window_s after it "
                        "(repeat for several; default: the emergency number)")
    p.add_argument("--release-pub", type=Path,
                   help="the release public key (release.pub) the handset checks over-the-air "
                        "updates with (without it, the handset takes no update)")
    p.add_argument("--imei", default="", help="host handsets only (a board's modem is asked)")
    p.add_argument("--iccid", default="", help="host handsets only (a board's modem is asked)")
    p.add_argument("--no-register", action="store_true", help="do not register on the server")
    p.add_argument("--overwrite", action="store_true", help="replace an existing configuration (and key)")
    _modem_boot(p)
    _server_args(p)

    p = sub.add_parser("selftest", help="on-board checks and a test message; commissioning report")
    _port_and_batch(p)
    p.add_argument("--report", type=Path, help="where to save the JSON report")
    p.add_argument("--report-dir", type=Path, help="directory for reports (default: current directory)")
    p.add_argument("--timeout", type=float, default=180, help="longest silence from the board, seconds")
    p.add_argument("--technician", default=os.environ.get("USER", ""), help="name in the report")
    _modem_boot(p)
    _server_args(p)
    image_cli.add_parsers(sub)  # build-image, romfs build/deploy (production image routes)
    release.add_parsers(sub)  # release-key, release, release-verify (over-the-air updates)
    return parser


def _port_and_batch(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", help="serial port or socket://host:port (default: the only USB serial port)")
    p.add_argument("--batch", type=Path, help="CSV of handsets, one per row (see docs/technician.md)")
    p.add_argument("--yes", action="store_true", help="batch: do not wait for Enter between handsets")


def _modem_boot(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--modem-boot-timeout", type=float, default=0,
        help="seconds to wait for a switched-off modem to boot (default: the firmware's, ~20 s)",
    )


def _server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", help="server base URL, e.g. https://tgd.opt.nc")
    p.add_argument("--token", help=f"technician API token (better: ${TOKEN_ENV} or --token-file)")
    p.add_argument("--token-file", type=Path)


def server_target(args: argparse.Namespace, required: bool) -> ServerTarget | None:
    if not args.server:
        if required:
            raise UsageError("give the server with --server (or --no-register)")
        return None
    if not args.server.startswith(("http://", "https://")):
        raise UsageError(f"--server {args.server}: give the server's base URL with its scheme, "
                         "e.g. https://tgd.opt.nc")
    token = args.token or os.environ.get(TOKEN_ENV, "")
    if args.token_file:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            raise UsageError(f"cannot read the token file {args.token_file}: {exc}") from exc
    if not token:
        raise UsageError(f"no technician token: set ${TOKEN_ENV}, or use --token-file")
    return ServerTarget(args.server, token)


def resolve_port(requested: str | None) -> str:
    if requested:
        return requested
    return esp.choose_port(None, esp.usb_serial_ports())


# -- commands ----------------------------------------------------------------
def cmd_detect(args: argparse.Namespace, out: TextIO) -> int:
    ports = [args.port] if args.port else [p.device for p in esp.usb_serial_ports()]
    if not ports:
        esp.choose_port(None, [])  # raises NoBoard with the advice
    for port in ports:
        if not esp.is_network_port(port):
            info = esp.detect_chip(port)
            size = info.flash_size or "unknown"
            print(f"{port}: {info.description}, flash {size}, MAC {info.mac}", file=out)
        try:
            # after esptool's hard reset the board boots (and starts the firmware) first
            wait_s = 0 if esp.is_network_port(port) else 5
            with flashing.open_when_ready(port, wait_s) as board:
                impl = board.implementation()
                names = board.listdir()
            # fw_manifest.json: also on a frozen or ROMFS image, whose modules are not files;
            # tgd/: the firmware's package, uploaded as .mpy files
            installed = "fw_manifest.json" in names or "tgd" in names
            tgd = "TGD firmware installed" if installed else "no TGD firmware"
            provisioned = "provisioned" if "config.json" in names else "not provisioned"
            print(f"{port}: MicroPython {impl.version} ({impl.machine}); {tgd}; {provisioned}", file=out)
        except BoardError:
            print(f"{port}: no MicroPython REPL (run `tgd-flash flash --image ...`)", file=out)
    return 0


def cmd_flash(args: argparse.Namespace, out: TextIO, row: batch.BatchRow | None = None) -> int:
    port = (row.get("port") if row else None) or args.port
    if port is None and args.dry_run and not esp.usb_serial_ports():
        port = flashing.NO_PORT  # show the plan without a handset: nothing is touched anyway
    options = flashing.FlashOptions(
        port=resolve_port(port),
        image=args.image,
        chip=args.chip,
        dry_run=args.dry_run,
        firmware_dir=args.firmware_dir,
        erase=not args.no_erase,
        frozen=args.frozen,
    )
    flashing.flash(options, out)
    return 0


def _settings(args: argparse.Namespace) -> dict[str, object]:
    names = ("transport", "mqtt_url", "mqtt_tls", "trigger_hold_ms", "heartbeat_interval_s",
             "track_interval_s", "call_retries", "alarm_timeout_s", "callback_window_s",
             "police_numbers")
    settings = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    if getattr(args, "release_pub", None) is not None:
        settings["release_pub"] = release.read_pub(args.release_pub, "--release-pub").hex()
    return settings


def cmd_provision(args: argparse.Namespace, out: TextIO, row: batch.BatchRow | None = None) -> int:
    def pick(name: str) -> str | None:
        return (row.get(name) if row else None) or getattr(args, name, None)

    device_id, special = pick("device_id"), pick("special_number")
    if not device_id:
        raise UsageError("--device-id is required (the handset's id from the case file, e.g. NC0001)")
    if not special:
        raise UsageError("--special-number is required (the SIM's number, e.g. +687751001)")
    sms_number = pick("sms_number")
    if not sms_number:
        raise UsageError("--sms-number is required (where the handset's AML SMS go, e.g. +687700100)")
    apn = row.values.get("apn") if row else None  # an empty cell: the modem's default
    apn = apn if apn is not None else args.apn
    if apn is None:
        raise UsageError("--apn is required (the operator's APN, e.g. --apn mobilis; "
                         "--apn '' keeps the modem's default)")
    common = dict(
        device_id=device_id,
        special_number=special,
        sms_number=sms_number,
        server_url=args.device_url,
        overwrite=args.overwrite,
        emergency_number=args.emergency_number,
        apn=apn,
        **_settings(args),
    )
    if args.host_dir:
        directory = args.host_dir / device_id if row is not None else args.host_dir
        server = None if args.no_register else server_target(args, required=False)
        local = server is None and not args.device_url
        if local:
            common["server_url"] = provision.LOCAL_DEVICE_URL
        result = provision.provision_host(
            directory, server=server, imei=pick("imei") or "", iccid=pick("iccid") or "", **common
        )
        if local:
            print(f"handset {device_id} will post to {provision.LOCAL_DEVICE_URL} (the server on "
                  "this PC, `tgd-server run`; --server or --device-url to change)", file=out)
        what = f"registered on {server.base_url} and " if result.registered else ""
        print(f"handset {device_id}: {what}config written to {directory / 'config.json'}", file=out)
        return 0
    server = None if args.no_register else server_target(args, required=True)
    port = resolve_port(pick("port"))
    provision.provision_board(
        port, server=server, out=out, modem_boot_timeout_s=args.modem_boot_timeout, **common
    )
    print(f"handset {device_id} provisioned on {port}", file=out)
    return 0


def cmd_selftest(args: argparse.Namespace, out: TextIO, row: batch.BatchRow | None = None) -> int:
    port = resolve_port((row.get("port") if row else None) or args.port)
    commission.run_selftest(
        port,
        out=out,
        report_path=args.report if row is None else None,
        report_dir=args.report_dir,
        server=server_target(args, required=False),
        timeout_s=args.timeout,
        technician=args.technician,
        modem_boot_timeout_s=args.modem_boot_timeout,
    )
    return 0


def cmd_virtual_board(args: argparse.Namespace, out: TextIO) -> int:
    import signal
    import time

    from .virtual_board import VirtualBoard

    for flag, path in (("--uart", args.uart), ("--pwrkey", args.pwrkey)):
        if path and not os.path.exists(path):
            raise UsageError(f"{flag} {path}: no such file; start the SIM7600 emulator "
                             "(`tgd-rig emulator`) and give the paths it prints")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the VM on `kill` too
    env = {"TGD_PWRKEY": args.pwrkey} if args.pwrkey else {}
    board = VirtualBoard(args.flash_dir, uart=args.uart, extra_env=env).start()
    if not args.uart:
        print("no --uart: this board has no modem, so provision and selftest stop with "
              "'the modem does not answer' (exit 9); `tgd-rig emulator` starts one", file=out)
    print(f"virtual board on {board.url} (flash {args.flash_dir}); Ctrl-C to stop", file=out, flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        board.stop()


_COMMANDS: dict[str, Callable[..., int]] = {
    "flash": cmd_flash,
    "provision": cmd_provision,
    "selftest": cmd_selftest,
}
_BATCH_REQUIRED = {"flash": (), "provision": ("device_id", "special_number"), "selftest": ()}


def run_batch(args: argparse.Namespace, out: TextIO, wait: Callable[[str], None]) -> int:
    rows = batch.read_batch(args.batch, _BATCH_REQUIRED[args.command])
    if args.command == "provision" and args.apn is None:
        without = [str(r.get("device_id") or r.line) for r in rows if r.values.get("apn") is None]
        if without:  # before the first handset is touched
            raise UsageError(f"--apn is required (the operator's APN, e.g. --apn mobilis), or an "
                             f"apn column in the batch file (missing for {', '.join(without)})")
    command = _COMMANDS[args.command]
    results: list[tuple[str, int, str]] = []
    for index, row in enumerate(rows):
        label = row.get("device_id") or f"line {row.line}"
        needs_swap = (not row.get("port") and not getattr(args, "host_dir", None)
                      and not getattr(args, "dry_run", False))
        if needs_swap and not args.yes and index > 0:
            wait(f"connect handset {label} and press Enter ")
        print(f"--- handset {label} ({index + 1}/{len(rows)})", file=out, flush=True)
        try:
            command(args, out, row)
            results.append((label, 0, "ok"))
        except FlashToolError as exc:
            print(f"error: {exc}", file=out)
            results.append((label, exc.exit_code, str(exc)))
    print("batch summary:", file=out)
    for label, code, message in results:
        print(f"  {'OK  ' if code == 0 else 'FAIL'} {label}" + ("" if code == 0 else f": {message}"), file=out)
    failures = [code for _, code, _ in results if code]
    return failures[0] if failures else 0


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        if args.command == "detect":
            return cmd_detect(args, out)
        if args.command == "virtual-board":
            return cmd_virtual_board(args, out)
        if args.command in release.COMMANDS:
            return release.run(args, out)
        if args.command in image_cli.COMMANDS:
            return image_cli.run(args, out, resolve_port)
        if getattr(args, "batch", None):
            return run_batch(args, out, wait=input)
        return _COMMANDS[args.command](args, out)
    except FlashToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
