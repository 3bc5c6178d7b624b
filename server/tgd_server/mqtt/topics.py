"""Topic names and payload framing of the MQTT transport (pure functions)."""

from __future__ import annotations

import hashlib
import hmac
import re

PREFIX = "tgd"
UPLINK_FILTER = f"{PREFIX}/+/up"
STATUS_FILTER = f"{PREFIX}/+/status"
# Service accounts (the bridge, benchmarks) live in their own namespace: every user
# name that starts with "tgd-", whatever its case. A device id can never take one
# (devices.register_device refuses it, accounts.write_password_file skips it).
SERVICE_PREFIX = "tgd-"
BRIDGE_USER = "tgd-bridge"

_DEVICE_TOPIC = re.compile(r"^tgd/([A-Za-z0-9_-]{1,32})/(up|down|status)$")
_SIGNATURE_HEX = 64


class FrameError(ValueError):
    """A payload that is not `<64 hex>\\n<body>`."""


def is_service_account(name: str) -> bool:
    """A user name of the service namespace (never a device's)."""
    return name.lower().startswith(SERVICE_PREFIX)


def bridge_user(partition: int) -> str:
    """The account of the bridge handling partition k (0: `tgd-bridge`, k: `tgd-bridge-<k+1>`)."""
    return BRIDGE_USER if partition == 0 else f"{BRIDGE_USER}-{partition + 1}"


def uplink(device_id: str) -> str:
    return f"{PREFIX}/{device_id}/up"


def downlink(device_id: str) -> str:
    return f"{PREFIX}/{device_id}/down"


def status(device_id: str) -> str:
    return f"{PREFIX}/{device_id}/status"


def parse_topic(topic: str) -> tuple[str, str] | None:
    """(device id, kind) of a device topic, or None for anything else."""
    match = _DEVICE_TOPIC.match(topic)
    return (match.group(1), match.group(2)) if match else None


def split_frame(payload: bytes) -> tuple[str, bytes]:
    """Signature and exact body of a framed payload."""
    head, sep, body = payload.partition(b"\n")
    if not sep or len(head) != _SIGNATURE_HEX:
        raise FrameError("payload is not '<64 hex signature>\\n<body>'")
    try:
        signature = head.decode("ascii")
        int(signature, 16)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FrameError("signature is not hexadecimal") from exc
    return signature.lower(), body


def frame(key_hex: str, body: bytes) -> bytes:
    """Sign `body` with the device key: the downlink payload."""
    signature = hmac.new(bytes.fromhex(key_hex), body, hashlib.sha256).hexdigest()
    return signature.encode("ascii") + b"\n" + body


def device_password(key_hex: str) -> str:
    """The handset's MQTT password, derived from its key so nothing more is provisioned.

    The firmware computes the same: HMAC-SHA256(key, "tgd-mqtt-password"), first 32 hex digits.
    """
    return hmac.new(bytes.fromhex(key_hex), b"tgd-mqtt-password", hashlib.sha256).hexdigest()[:32]
