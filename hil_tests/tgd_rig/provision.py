"""Handset identities and their config.json, written the way tools/flash.py writes it.

docs/interfaces.md §6 is the format. When `tgd_flash` offers host provisioning
(`python tools/flash.py provision --host-dir DIR`), `write_host_config` uses it, so
an emulated handset gets exactly what a real one gets; until then it writes the
same JSON itself.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RigError

CONFIG_NAME = "config.json"
DEFAULTS: dict[str, Any] = {
    "config_version": 1,
    "emergency_number": "17",
    "sms_number": "+687700100",
    "apn": "mobilis",
    "transport": "http",
    "trigger_hold_ms": 2000,
    "heartbeat_interval_s": 1800,
    "track_interval_s": 30,
    "call_retries": 5,
    "alarm_timeout_s": 14400,
    "low_battery_mv": 3550,
    "cutoff_mv": 3350,
}


@dataclass(frozen=True)
class HandsetIdentity:
    """What a handset is on the network and at the server."""

    device_id: str
    key: str            # 64 hex digits
    special_number: str  # the MSISDN the police see
    imei: str
    iccid: str
    imsi: str

    @classmethod
    def generate(cls, device_id: str, index: int, special_number: str | None = None) -> HandsetIdentity:
        """A fresh identity; `index` keeps numbers distinct between handsets of one rig."""
        return cls(device_id=device_id, key=secrets.token_hex(32),
                   special_number=special_number or f"+6877510{index:02d}",
                   imei=f"8612345678{index:05d}",
                   iccid=f"8968701000000{index:06d}",
                   imsi=f"5460100000{index:05d}")


def handset_config(identity: HandsetIdentity, server_url: str,
                   overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    config = dict(DEFAULTS)
    config.update({"device_id": identity.device_id, "key": identity.key,
                   "special_number": identity.special_number, "server_url": server_url})
    for key, value in (overrides or {}).items():
        if key in ("device_id", "key"):
            raise RigError(f"config override {key!r} is not allowed: it is the handset's identity")
        config[key] = value
    return config


def write_host_config(flash_dir: Path, config: dict[str, Any]) -> Path:
    """Write config.json at the flash root atomically (a cut never leaves half a file)."""
    flash_dir.mkdir(parents=True, exist_ok=True)
    target = flash_dir / CONFIG_NAME
    tmp = flash_dir / (CONFIG_NAME + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(config, f, separators=(",", ":"), sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return target
