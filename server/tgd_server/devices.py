"""Device registry operations shared by the REST API and the admin CLI."""

from __future__ import annotations

import hashlib
import json
import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from .message import DEVICE_ID_RE
from .models import Case, Command, Device, utcnow
from .mqtt.topics import is_service_account

KEY_RE = re.compile(r"[0-9a-fA-F]{64}")
PHONE_RE = re.compile(r"\+?[0-9]{2,15}")
DIGITS_RE = re.compile(r"[0-9]{0,20}")
FW_RE = re.compile(r"[ -~]{0,32}")
CONFIG_KEYS = {  # what a `config` command may set, with the handset's accepted ranges
    "heartbeat_interval_s": (60, 86400),
    "track_interval_s": (5, 3600),
    "trigger_hold_ms": (500, 10000),
    "call_retries": (0, 20),
    "alarm_timeout_s": (600, 172800),
    "low_battery_mv": (3000, 4200),
}


class DeviceError(Exception):
    """Refused device operation; `status` is the HTTP status the API answers."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def new_key_hex() -> str:
    return secrets.token_hex(32)


def _text(fields: dict, name: str, pattern: re.Pattern, required: bool, what: str) -> str:
    value = fields.get(name)
    if value in (None, "") and not required:
        return ""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise DeviceError(400, "bad_value", f"{name} must be {what}")
    return value


def json_integer(value) -> int | None:
    """A JSON integer as JSON Schema (docs/openapi.yaml) means it: 1043 or 1043.0, never
    true or 1043.5; None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def register_device(session: Session, fields: dict) -> Device:
    """Create a device (or bring a retired one back with a new key)."""
    if not isinstance(fields, dict):
        raise DeviceError(400, "bad_value", "a JSON object is required")
    unknown = set(fields) - {"device_id", "special_number", "imei", "iccid", "key", "fw_version",
                             "heartbeat_interval_s"}
    if unknown:
        raise DeviceError(400, "unknown_field", f"unknown keys: {', '.join(sorted(unknown))}")
    device_id = _text(fields, "device_id", DEVICE_ID_RE, True, "[A-Za-z0-9_-]{1,32}")
    if is_service_account(device_id):
        raise DeviceError(400, "bad_value", "device_id must not start with 'tgd-' "
                          "(reserved for the server's MQTT accounts)")
    special = _text(fields, "special_number", PHONE_RE, True, "a phone number (+ and digits)")
    key = _text(fields, "key", KEY_RE, True, "64 hex digits")
    imei = _text(fields, "imei", DIGITS_RE, False, "digits")
    iccid = _text(fields, "iccid", DIGITS_RE, False, "digits")
    fw = fields.get("fw_version", "")
    if not isinstance(fw, str) or not FW_RE.fullmatch(fw):
        raise DeviceError(400, "bad_value",
                          "fw_version must be printable ASCII, at most 32 characters")
    interval = json_integer(fields.get("heartbeat_interval_s", 1800))
    if interval is None or not 60 <= interval <= 86400:
        raise DeviceError(400, "bad_value", "heartbeat_interval_s must be an integer in 60..86400")

    device = session.get(Device, device_id)
    if device is not None and device.retired_at is None:
        raise DeviceError(409, "exists", f"device {device_id} exists")
    holder = session.scalar(select(Device).where(Device.special_number == special))
    if holder is not None and holder.id != device_id:
        raise DeviceError(409, "number_in_use", f"{special} belongs to device {holder.id}")
    if device is None:
        device = Device(id=device_id)
        session.add(device)
    device.special_number, device.key_hex = special, key.lower()
    device.imei, device.iccid, device.fw_version = imei, iccid, fw
    device.heartbeat_interval_s = interval
    device.retired_at = None
    device.seq_high, device.seq_bitmap = 0, 0  # a new key starts a new sequence
    session.flush()
    return device


def retire_device(session: Session, device_id: str) -> Device:
    """Take a device out of service; its history (alarms, positions) stays."""
    device = session.get(Device, device_id)
    if device is None or device.retired_at is not None:
        raise DeviceError(404, "not_found", f"no device {device_id}")
    device.retired_at = utcnow()
    device.key_hex = "0" * 64  # its messages are refused from now on
    # Frees the number for another handset; unique, within the column's 20 characters.
    device.special_number = "retired-" + hashlib.sha256(device.id.encode()).hexdigest()[:12]
    device.case_id = None
    return device


def assign_case(session: Session, device_id: str, judicial_ref: str, name: str,
                address: str = "", police_notes: str = "",
                address_position: tuple[float, float] | None = None) -> Case:
    device = session.get(Device, device_id)
    if device is None or device.retired_at is not None:
        raise DeviceError(404, "not_found", f"no device {device_id}")
    if not judicial_ref or not name:
        raise DeviceError(400, "bad_value", "a case needs a judicial reference and a name")
    case = session.scalar(select(Case).where(Case.judicial_ref == judicial_ref))
    if case is None:
        case = Case(judicial_ref=judicial_ref, name=name, address=address,
                    police_notes=police_notes)
        session.add(case)
    else:
        case.name, case.address, case.police_notes = name, address, police_notes
    if address_position is not None:
        lat, lon = address_position
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise DeviceError(400, "bad_value", "the address position is not a latitude,longitude")
        case.address_lat, case.address_lon = lat, lon
    session.flush()
    device.case_id = case.id
    return case


def queue_command(session: Session, device_id: str, command_type: str, settings: dict | None,
                  user_id: int | None) -> Command:
    device = session.get(Device, device_id)
    if device is None or device.retired_at is not None:
        raise DeviceError(404, "not_found", f"no device {device_id}")
    if command_type == "locate":
        if settings is not None:
            raise DeviceError(400, "unknown_field", "locate takes no `set`")
        payload = {}
    elif command_type == "config":
        if not isinstance(settings, dict) or not settings:
            raise DeviceError(400, "bad_value", "config needs a non-empty `set` object")
        payload = {}
        for key, value in settings.items():
            if key not in CONFIG_KEYS:
                raise DeviceError(400, "unknown_field", f"{key} cannot be set remotely")
            low, high = CONFIG_KEYS[key]
            number = json_integer(value)
            if number is None or not low <= number <= high:
                raise DeviceError(400, "bad_value", f"{key} must be an integer in {low}..{high}")
            payload[key] = number
    else:
        raise DeviceError(400, "bad_value", "type must be locate or config")
    command = Command(device_id=device_id, type=command_type,
                      payload=json.dumps(payload, separators=(",", ":")), created_by=user_id)
    session.add(command)
    device.commands_pending = (device.commands_pending or 0) + 1
    if command_type == "config" and "heartbeat_interval_s" in payload:
        device.heartbeat_interval_s = payload["heartbeat_interval_s"]
    if command_type == "config" and "low_battery_mv" in payload:
        device.low_battery_mv = payload["low_battery_mv"]
    session.flush()
    return command


def device_json(device: Device) -> dict:
    """What the API shows of a device: never the key, never the case."""
    def iso(value):
        return value.isoformat() if value else None

    return {
        "device_id": device.id, "special_number": device.special_number, "imei": device.imei,
        "iccid": device.iccid, "fw_version": device.fw_version,
        "heartbeat_interval_s": device.heartbeat_interval_s,
        "assigned": device.case_id is not None,
        "last_seen_at": iso(device.last_seen_at), "last_heartbeat_at": iso(device.last_heartbeat_at),
        "battery_mv": device.battery_mv, "signal_csq": device.signal_csq,
        "low_battery": device.low_battery, "last_gasp_at": iso(device.last_gasp_at),
        "last_fix_at": iso(device.last_fix_at), "last_method": device.last_method,
        "created_at": iso(device.created_at),
    }
