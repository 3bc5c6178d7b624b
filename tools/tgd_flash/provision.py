"""`provision`: a device key, config.json, and the server registration, all or nothing.

Order: everything that can be checked is checked first (config valid, board
has firmware and no config yet, modem answers with its IMEI/ICCID). Then the
device is registered on the server, then config.json is written atomically
(temporary file, sha256 checked, rename). If the write fails the registration
is deleted, so a failed provision leaves the server and the handset as they were.

``provision_host`` does the same for a host-board handset (a directory used as
its flash): the rig and the demo call it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from . import fwbuild, handset_config, onboard, serverapi
from .board import Board
from .errors import (
    AlreadyProvisioned,
    BoardError,
    FlashToolError,
    InvalidConfig,
    ServerUnreachable,
    VerificationFailed,
)
from .handset_config import CONFIG_NAME
from .serverapi import ServerTarget

_TMP = CONFIG_NAME + ".tmp"
# Where a host-board handset posts when no server is named: `tgd-server run` on this PC.
LOCAL_DEVICE_URL = "http://127.0.0.1:8080" + serverapi.DEVICE_MESSAGES_PATH


@dataclass
class ProvisionResult:
    config: dict
    key: str
    imei: str
    iccid: str
    registered: bool
    where: str  # port or directory

    @property
    def device_id(self) -> str:
        return self.config["device_id"]


def _device_url(server: ServerTarget | None, server_url: str | None) -> str:
    if server_url:
        return server_url
    if server is not None:
        return server.device_messages_url
    raise InvalidConfig(
        "no URL for the handset to post to: give the server with --server, or --device-url URL"
    )


def _register_then_write(
    server: ServerTarget | None,
    cfg: dict,
    imei: str,
    iccid: str,
    fw_version: str,
    write,
) -> bool:
    """Register (if a server is given), then write; undo the registration if the write fails."""
    if server is not None:
        _register(
            server,
            {
                "device_id": cfg["device_id"],
                "special_number": cfg["special_number"],
                "imei": imei,
                "iccid": normalise_iccid(iccid),
                "key": cfg["key"],
                "fw_version": fw_version,
                "heartbeat_interval_s": cfg["heartbeat_interval_s"],
            },
        )
    try:
        write()
    except BaseException as exc:
        if server is not None:
            try:
                serverapi.delete_device(server, cfg["device_id"])
            except FlashToolError as undo:
                raise VerificationFailed(
                    f"writing the configuration failed ({exc}) AND removing the registration of "
                    f"{cfg['device_id']} failed ({undo}): delete it on the server by hand"
                ) from exc
        raise
    return server is not None


def _register(server: ServerTarget, record: dict) -> None:
    """Register, and if the answer is lost (network cut, Ctrl-C) remove what may have landed.

    The id is checked free first, so a registration found afterwards is ours.
    """
    device_id = record["device_id"]
    if serverapi.get_device(server, device_id) is not None:
        raise serverapi.already_registered(device_id)
    try:
        serverapi.register_device(server, record)
    except (ServerUnreachable, KeyboardInterrupt):
        try:
            if serverapi.get_device(server, device_id) is not None:
                serverapi.delete_device(server, device_id)
        except FlashToolError:
            pass  # still unreachable: the error below says to check by hand
        raise


def normalise_iccid(iccid: str) -> str:
    """ICCIDs of 19 digits are padded with an F nibble on the SIM; the number is the digits."""
    return iccid.rstrip("Ff") if iccid[:-1].isdigit() else iccid


def provision_host(
    directory: Path | str,
    *,
    device_id: str,
    special_number: str,
    sms_number: str,
    server: ServerTarget | None = None,
    server_url: str | None = None,
    imei: str = "",
    iccid: str = "",
    key: str | None = None,
    overwrite: bool = False,
    **settings: object,
) -> ProvisionResult:
    """Write config.json for a host-board handset into ``directory`` (its flash).

    Registers the device on ``server`` first when one is given. Returns the
    config and the key (the rig needs the key to check signatures).
    """
    directory = Path(directory)
    key = key or handset_config.new_device_key()
    cfg = handset_config.build_config(
        device_id=device_id,
        key=key,
        special_number=special_number,
        sms_number=sms_number,
        server_url=_device_url(server, server_url),
        **settings,
    )
    target = directory / CONFIG_NAME
    if target.exists() and not overwrite:
        raise AlreadyProvisioned(
            f"{target} exists: this handset is already provisioned (use --overwrite to replace "
            "its configuration and key)"
        )
    if directory.exists() and not directory.is_dir():
        raise InvalidConfig(f"{directory} is a file: give --host-dir a directory")
    data = handset_config.config_bytes(cfg)
    fw_version = fwbuild.firmware_version(fwbuild.firmware_dir())
    registered = _register_then_write(
        server, cfg, imei, iccid, fw_version, lambda: _write_into(directory, target, data)
    )
    return ProvisionResult(cfg, key, imei, iccid, registered, str(directory))


def _write_into(directory: Path, target: Path, data: bytes) -> None:
    """Make ``directory`` (and missing parents) and write; if that fails, remove what was made."""
    made = [p for p in (directory, *directory.parents) if not p.exists()]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handset_config.write_atomically(target, data)
    except BaseException:
        for folder in made:  # deepest first; only the empty folders this call made
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def provision_board(
    port: str,
    *,
    device_id: str,
    special_number: str,
    sms_number: str,
    server: ServerTarget | None,
    server_url: str | None = None,
    overwrite: bool = False,
    out: TextIO,
    identity_timeout_s: float = 90,
    modem_boot_timeout_s: float = 0,
    **settings: object,
) -> ProvisionResult:
    key = handset_config.new_device_key()
    cfg = handset_config.build_config(
        device_id=device_id,
        key=key,
        special_number=special_number,
        sms_number=sms_number,
        server_url=_device_url(server, server_url),
        **settings,
    )
    data = handset_config.config_bytes(cfg)
    with Board(port) as board:
        onboard.require_firmware(board)
        existing = board.read_json(CONFIG_NAME)
        if existing is not None and not overwrite:
            old = existing.get("device_id") if isinstance(existing, dict) else None
            raise AlreadyProvisioned(
                f"the handset on {port} is already provisioned"
                + (f" as {old}" if old else "")
                + ": use --overwrite to replace its configuration (and its key)"
            )
        print("reading IMEI and ICCID from the modem ...", file=out, flush=True)
        imei, iccid = onboard.read_identity(
            board, timeout_s=identity_timeout_s, boot_timeout_s=modem_boot_timeout_s
        )
        print(f"modem IMEI {imei}, ICCID {iccid}", file=out)
        manifest = board.read_json(fwbuild.MANIFEST)
        fw_version = manifest.get("fw", "unknown") if isinstance(manifest, dict) else "unknown"
        registered = _register_then_write(
            server, cfg, imei, iccid, fw_version, lambda: write_config_on_board(board, data)
        )
    if registered:
        print(f"registered {device_id} on {server.base_url}", file=out)
    print(f"config.json written to the handset on {port} and verified (sha256)", file=out)
    return ProvisionResult(cfg, key, imei, iccid, registered, port)


def write_config_on_board(board: Board, data: bytes) -> None:
    """Temp file, sha256 checked on the board, rename, checked again."""
    digest = hashlib.sha256(data).hexdigest()
    try:
        board.write_file(_TMP, data)
        if board.sha256([_TMP]).get(_TMP) != digest:
            raise VerificationFailed("config.json was corrupted on its way to the handset")
        board.rename(_TMP, CONFIG_NAME)
    except BaseException:
        try:
            board.remove_if_exists(_TMP)
        except BoardError:
            pass
        raise
    if board.sha256([CONFIG_NAME]).get(CONFIG_NAME) != digest:
        board.remove_if_exists(CONFIG_NAME)  # never leave a config that is not the registered one
        raise VerificationFailed("config.json on the handset differs from what was written")
