"""config.json for a handset (docs/interfaces.md §6, DESIGN.md "contract: configuration").

The config is checked with the firmware's own validator (firmware/config.py),
so the tool can never write a file the handset would reject or run in safe mode.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from . import fwbuild
from .errors import InvalidConfig

CONFIG_NAME = "config.json"

# Settings a technician may override (everything else comes from the firmware's defaults).
TUNABLE = (
    "emergency_number", "sms_number", "apn", "transport", "trigger_hold_ms",
    "heartbeat_interval_s", "track_interval_s", "call_retries", "alarm_timeout_s",
    "low_battery_mv", "cutoff_mv", "mqtt_url", "mqtt_tls", "police_numbers", "callback_window_s",
)


def new_device_key() -> str:
    """32 random bytes from the OS's CSPRNG, as 64 lowercase hex digits."""
    return secrets.token_hex(32)


def _firmware_config_module() -> ModuleType:
    path = fwbuild.firmware_dir() / "config.py"
    spec = importlib.util.spec_from_file_location("tgd_firmware_config", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise InvalidConfig(f"the firmware's config validator {path} is missing")
    module = importlib.util.module_from_spec(spec)
    # The validator may import its sibling firmware modules (limits.py...): give it the
    # firmware folder for the time of the import only, and forget what it loaded from
    # there, so firmware names (log, errors, message...) never shadow anything here.
    folder = str(path.parent)
    before = set(sys.modules)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
        for name in set(sys.modules) - before:
            origin = getattr(sys.modules[name], "__file__", "") or ""
            if origin.startswith(folder):
                del sys.modules[name]
    return module


def build_config(
    *,
    device_id: str,
    key: str,
    special_number: str,
    server_url: str,
    sms_number: str = "",
    apn: str = "",
    emergency_number: str = "17",
    **settings: object,
) -> dict:
    """A complete config, validated exactly as the handset will at boot."""
    unknown = sorted(set(settings) - set(TUNABLE))
    if unknown:
        raise InvalidConfig(f"unknown setting(s): {', '.join(unknown)}")
    fw_config = _firmware_config_module()
    raw = {
        "config_version": fw_config.SCHEMA_VERSION,
        "device_id": device_id,
        "key": key,
        "special_number": special_number,
        "emergency_number": emergency_number,
        "sms_number": sms_number,
        "server_url": server_url,
        "apn": apn,
    }
    raw.update({k: v for k, v in settings.items() if v is not None})
    cfg, problems, safe_reason = fw_config.validate(raw)
    if problems or safe_reason:
        listed = "; ".join(f"{k}: {why}" for k, why in problems) or safe_reason
        raise InvalidConfig(f"the handset would reject this configuration ({listed})")
    if not special_number:
        raise InvalidConfig("special_number is required: the police recognise the handset by it")
    if not sms_number:
        raise InvalidConfig("sms_number is required: the AML SMS must have somewhere to go")
    return cfg


def config_bytes(cfg: dict) -> bytes:
    return (json.dumps(cfg, indent=1, sort_keys=True) + "\n").encode()


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename: the old file or the new one, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)  # it holds the device key
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
