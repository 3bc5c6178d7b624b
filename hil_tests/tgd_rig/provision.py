"""Handset identities, and their provisioning through the flashing tool's own code.

An emulated handset is provisioned by `tgd_flash.provision.provision_host` (what
`tools/flash.py provision --host-dir DIR` runs): the same validated config.json a
real board gets (docs/interfaces.md §6) and the same registration on the server.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RigError

_SERVER_ATTEMPTS = 3


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
                   special_number=special_number or f"+6877{index:05d}",
                   imei=f"8612345678{index:05d}",
                   iccid=f"8968701000000{index:06d}",
                   imsi=f"5460100000{index:05d}")


def provision_host_handset(flash_dir: Path, identity: HandsetIdentity, *, server_url: str,
                           sms_number: str, emergency_number: str = "17",
                           base_url: str | None = None, tech_token: str | None = None,
                           settings: dict[str, Any] | None = None,
                           on_server_error=None) -> dict[str, Any]:
    """Provision a host-board handset with the flashing tool's own code (tgd_flash).

    With `base_url` and `tech_token` the device is registered on the server first,
    exactly as `tools/flash.py provision --host-dir` does; returns the config written.
    """
    from tgd_flash.errors import FlashToolError, ServerError
    from tgd_flash.provision import provision_host
    from tgd_flash.serverapi import ServerTarget

    settings = dict(settings or {})
    for forbidden in ("device_id", "key", "special_number", "server_url"):
        if forbidden in settings:
            raise RigError(f"config override {forbidden!r} is not allowed: it is the handset's identity")
    if "sms_number" in settings:
        sms_number = settings.pop("sms_number")
    if "emergency_number" in settings:
        emergency_number = settings.pop("emergency_number")
    server = ServerTarget(base_url, tech_token) if base_url and tech_token else None
    for attempt in range(1, _SERVER_ATTEMPTS + 1):
        try:
            result = provision_host(flash_dir, device_id=identity.device_id,
                                    special_number=identity.special_number, sms_number=sms_number,
                                    emergency_number=emergency_number, server=server,
                                    server_url=server_url, imei=identity.imei, iccid=identity.iccid,
                                    key=identity.key, overwrite=True, **settings)
            return result.config
        except ServerError as exc:
            # A 5xx is the server's trouble, not the handset's: the technician tries again
            # (the registration is all or nothing, so a retry cannot make a second one).
            if attempt == _SERVER_ATTEMPTS or "HTTP 5" not in str(exc):
                raise RigError(f"provisioning {identity.device_id} failed: {exc}") from exc
            if on_server_error is not None:
                on_server_error(f"provisioning {identity.device_id}: {exc}"[:300])
            time.sleep(0.2 * attempt)
        except FlashToolError as exc:
            raise RigError(f"provisioning {identity.device_id} failed: {exc}") from exc
    raise RigError(f"provisioning {identity.device_id} failed")
