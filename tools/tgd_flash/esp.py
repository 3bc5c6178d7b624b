"""The ESP32 side: ports, chip detection, image checks and the esptool commands.

Erasing and writing run esptool as a subprocess with the exact argument lists
that ``--dry-run`` prints, so what a technician reads is what runs.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import (
    BadImage,
    BoardError,
    EsptoolFailed,
    ImageMissing,
    NoBoard,
    SeveralBoards,
    WrongChip,
)

_IMAGE_MAGIC = 0xE9
_HEADER_LEN = 24  # common header (8 bytes) + extended header (16 bytes)
_CHIP_ID_OFFSET = 12  # little-endian uint16 inside the extended header
WRITE_BAUD = 460800


@dataclass(frozen=True)
class Chip:
    key: str  # esptool's --chip value, e.g. "esp32"
    name: str  # e.g. "ESP32"
    image_chip_id: int
    bootloader_offset: int


def known_chips() -> dict[str, Chip]:
    """Chips esptool knows that carry an image chip id (every ESP32 family member)."""
    from esptool.targets import CHIP_DEFS

    chips = {}
    for key, cls in CHIP_DEFS.items():
        chip_id = getattr(cls, "IMAGE_CHIP_ID", None)
        if chip_id is None:
            continue
        chips[key] = Chip(key, cls.CHIP_NAME, chip_id, cls.BOOTLOADER_FLASH_OFFSET)
    return chips


def chip_by_key(key: str) -> Chip:
    chips = known_chips()
    wanted = key.lower().replace("-", "")
    if wanted not in chips:
        raise WrongChip(f"unknown chip {key!r}; known: {', '.join(sorted(chips))}")
    return chips[wanted]


def chip_by_name(name: str) -> Chip:
    """From esptool's CHIP_NAME, e.g. 'ESP32-S3'."""
    for chip in known_chips().values():
        if chip.name == name.upper():
            return chip
    raise WrongChip(f"chip {name!r} is not an ESP32 family chip this tool knows")


@dataclass(frozen=True)
class ImageInfo:
    path: Path
    chip: Chip
    size: int


def read_image(path: Path) -> ImageInfo:
    """Read a firmware image's header: which chip it was built for."""
    path = Path(path)
    if not path.is_file():
        raise ImageMissing(
            f"firmware image {path} not found: download the MicroPython .bin for the "
            "handset's chip (see docs/technician.md) and give its path with --image"
        )
    with path.open("rb") as f:
        header = f.read(_HEADER_LEN)
    if len(header) < _HEADER_LEN or header[0] != _IMAGE_MAGIC:
        raise BadImage(f"{path} is not an ESP firmware image (no 0xE9 header)")
    chip_id = int.from_bytes(header[_CHIP_ID_OFFSET : _CHIP_ID_OFFSET + 2], "little")
    for chip in known_chips().values():
        if chip.image_chip_id == chip_id:
            return ImageInfo(path, chip, path.stat().st_size)
    raise BadImage(f"{path}: unknown chip id {chip_id} in the image header")


def check_image_for_chip(image: ImageInfo, chip: Chip, chip_from_flag: bool = False) -> None:
    """Refuse an image built for another chip; ``chip_from_flag``: ``chip`` is --chip's, not the board's."""
    if image.chip.key == chip.key:
        return
    if chip_from_flag:
        raise WrongChip(
            f"{image.path.name} is built for {image.chip.name} but --chip {chip.key} names an "
            f"{chip.name}: give the handset's chip with --chip (or leave it out to ask the "
            f"handset), or use the MicroPython image for {chip.name}"
        )
    raise WrongChip(
        f"{image.path.name} is built for {image.chip.name} but the handset's chip is an "
        f"{chip.name}: use the MicroPython image for {chip.name}"
    )


def esptool_base(chip: Chip, port: str) -> list[str]:
    return [sys.executable, "-m", "esptool", "--chip", chip.key, "--port", port]


def erase_command(chip: Chip, port: str) -> list[str]:
    return esptool_base(chip, port) + ["erase-flash"]


def write_command(chip: Chip, port: str, image: ImageInfo, baud: int = WRITE_BAUD) -> list[str]:
    return esptool_base(chip, port) + [
        "--baud",
        str(baud),
        "write-flash",
        hex(chip.bootloader_offset),
        str(image.path),
    ]


def run_esptool(argv: Sequence[str], runner: Callable[..., subprocess.CompletedProcess] | None = None) -> None:
    """Run one esptool command; its own progress output goes to the terminal."""
    run = runner or subprocess.run
    result = run(list(argv))
    if result.returncode != 0:
        raise EsptoolFailed(
            f"esptool failed (exit {result.returncode}): {' '.join(argv)}; check the USB cable, "
            "hold BOOT while pressing EN to force download mode, and retry"
        )


# -- ports ---------------------------------------------------------------
@dataclass(frozen=True)
class PortInfo:
    device: str
    description: str


def usb_serial_ports() -> list[PortInfo]:
    """USB serial ports (a handset's USB-UART bridge has a USB vendor id)."""
    from serial.tools import list_ports

    return [
        PortInfo(p.device, p.description or "")
        for p in list_ports.comports()
        if getattr(p, "vid", None) is not None
    ]


def choose_port(requested: str | None, candidates: Sequence[PortInfo]) -> str:
    """The port to use: the one asked for, or the only handset plugged in."""
    if requested:
        return requested
    if not candidates:
        raise NoBoard(
            "no handset found on the USB serial ports: plug it in with a data cable "
            "(not a charge-only one) and check that it shows up (ls /dev/ttyUSB* /dev/ttyACM*)"
        )
    if len(candidates) > 1:
        listed = ", ".join(p.device for p in candidates)
        raise SeveralBoards(f"several serial ports ({listed}): say which handset with --port")
    return candidates[0].device


def is_network_port(port: str) -> bool:
    """A pyserial URL (socket://, rfc2217://): a virtual board, no ESP bootloader."""
    return "://" in port


@dataclass(frozen=True)
class ChipInfo:
    chip: Chip
    description: str
    mac: str
    flash_size: str | None


def detect_chip(port: str) -> ChipInfo:
    """Ask the chip's ROM bootloader who it is (resets the board into download mode)."""
    from esptool.cmds import detect_chip as esptool_detect
    from esptool.cmds import detect_flash_size

    try:
        esp = esptool_detect(port=port, connect_attempts=3)
    except Exception as exc:  # esptool raises FatalError and serial errors alike
        raise NoBoard(f"no ESP chip answers on {port}: {exc}") from exc
    try:
        description = esp.get_chip_description()
        mac = ":".join(f"{b:02x}" for b in esp.read_mac())
        try:
            flash_size = detect_flash_size(esp)
        except Exception:  # secure download mode: size unknown, not fatal for detection
            flash_size = None
        chip = chip_by_name(esp.CHIP_NAME)
        esp.hard_reset()
    except WrongChip:
        raise
    except Exception as exc:
        raise BoardError(f"chip on {port} stopped answering during detection: {exc}") from exc
    finally:
        try:
            esp._port.close()
        except Exception:
            pass
    return ChipInfo(chip, description, mac, flash_size)
