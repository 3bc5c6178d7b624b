"""Talking to firmware/tgd/selftest.py on the board through the REPL.

The on-board script prints one result per line, prefixed ``TGD `` and followed
by compact JSON, so the host can tell results from anything else the firmware
logs. This module runs it and parses those lines.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from .board import Board
from .errors import BoardError, FirmwareMissing, ModemNotAnswering

PREFIX = "TGD "
# What the host board (firmware/host/board_host.py) raises when it was given no modem.
NO_MODEM_ON_HOST = "TGD_UART is not set"


def parse_result_line(line: str) -> dict | None:
    """The JSON object on a ``TGD {...}`` line, else None."""
    line = line.strip()
    if not line.startswith(PREFIX):
        return None
    try:
        value = json.loads(line[len(PREFIX) :])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class LineSplitter:
    """Feeds bytes in, calls ``on_line`` for every complete text line."""

    def __init__(self, on_line: Callable[[str], None]) -> None:
        self._buf = b""
        self._on_line = on_line

    def feed(self, data: bytes) -> None:
        self._buf += data
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            self._on_line(line.decode(errors="replace").rstrip("\r"))

    def flush(self) -> None:
        if self._buf:
            rest, self._buf = self._buf, b""
            self._on_line(rest.decode(errors="replace").rstrip("\r"))


def require_firmware(board: Board) -> list[str]:
    names = board.listdir()
    # fw_manifest.json: a frozen or ROMFS image has the modules, but not as files;
    # tgd/: the firmware's package uploaded as .mpy files
    if "tgd" not in names and any(n in names for n in ("selftest.py", "selftest.mpy")):
        raise FirmwareMissing(
            f"the handset on {board.port} runs a firmware of the old flat layout (selftest at the "
            "root, no tgd/ package): run `tgd-flash flash` first"
        )
    if not any(n in names for n in ("tgd", "fw_manifest.json")):
        raise FirmwareMissing(
            f"the handset on {board.port} has no TGD firmware: run `tgd-flash flash` first"
        )
    return names


def run_results(board: Board, call: str, on_result: Callable[[dict], None], timeout_s: float) -> list[dict]:
    """Run ``from tgd import selftest; selftest.<call>`` and collect its result lines.

    The board is soft-reset first: a clean heap, and no module or task left
    over from an earlier session (or from the firmware interrupted by Ctrl-C).
    """
    board.soft_reset()
    results: list[dict] = []

    def on_line(line: str) -> None:
        result = parse_result_line(line)
        if result is not None:
            results.append(result)
            on_result(result)

    splitter = LineSplitter(on_line)
    try:
        board.run(f"from tgd import selftest\nselftest.{call}", timeout_s=timeout_s, on_output=splitter.feed)
    except BoardError as exc:
        if NO_MODEM_ON_HOST in str(exc):
            raise ModemNotAnswering(
                f"the board on {board.port} has no modem: it is a virtual board started without "
                "--uart; start the SIM7600 emulator (`tgd-rig emulator`) and restart the board "
                "with --uart PTY"
            ) from exc
        raise
    splitter.flush()
    return results


def read_identity(board: Board, timeout_s: float = 90, boot_timeout_s: float = 0) -> tuple[str, str]:
    """IMEI and ICCID, read from the modem by the firmware's driver on the board.

    ``boot_timeout_s``: how long the driver waits for the modem to boot after
    switching it on (0: the firmware's own default, about 20 s).
    """
    call = f"identity(boot_timeout_ms={int(boot_timeout_s * 1000)})"
    results = run_results(board, call, lambda _r: None, timeout_s)
    final = results[-1] if results else {}
    if final.get("ok") and final.get("imei") and final.get("iccid"):
        return str(final["imei"]), str(final["iccid"])
    detail = final.get("detail") or "no answer from the on-board self-test"
    if final.get("error") in ("modem_not_answering", None):
        raise ModemNotAnswering(
            f"the modem does not answer ({detail}): check that the SIM7600 is powered "
            "(battery charged, PWRKEY wiring), then retry"
        )
    raise BoardError(f"reading the modem's identity failed: {detail}")
