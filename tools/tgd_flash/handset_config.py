"""config.json for a handset (docs/interfaces.md §6, DESIGN.md "contract: configuration").

The config is checked with the firmware's own validator (firmware/tgd/config.py),
so the tool can never write a file the handset would reject or run in safe mode.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shlex
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
    "ota_min_bat_mv", "release_pub",
)


# The flag (or the batch column) a technician sets each key with, for the error messages.
_WHERE = {
    "device_id": "--device-id", "key": "the device key", "special_number": "--special-number",
    "emergency_number": "--emergency-number", "sms_number": "--sms-number",
    "server_url": "--device-url", "apn": "--apn", "transport": "--transport",
    "mqtt_url": "--mqtt-url", "mqtt_tls": "--mqtt-tls", "police_numbers": "--police-number",
    "release_pub": "--release-pub",
    "config_version": "config_version",
}
# The firmware validator's reasons (compact codes for the handset's log), in words.
_WHY = {
    "not_[A-Za-z0-9_-]{1,32}": "use 1 to 32 letters, digits, '-' or '_' (e.g. NC0001)",
    "not_64_hex_digits": "must be 64 hexadecimal digits",
    "not_an_http(s)_url": "must be an http:// or https:// URL without spaces, at most 200 characters",
    "not_a_number": "must be a phone number: digits, optionally after a '+'",
    "bad_apn": "at most 64 characters, without '\"' or control characters",
    "not_http_or_mqtt": "must be http or mqtt",
    "not_tcp://host:port": "must be tcp://host:port (TLS is --mqtt-tls)",
    "not_a_list_of_up_to_8_numbers": "up to 8 phone numbers, digits optionally after a '+'",
    "not_true_or_false": "must be true or false",
    "unsupported_version": "this firmware reads another config_version",
    "not_below_low_battery_mv": "must be below low_battery_mv",
    "missing_for_mqtt:http_used": "--transport mqtt needs --mqtt-url tcp://host:port",
    "unknown_key": "unknown setting",
}
_INT_RANGE = re.compile(r"not_an_int_in_(-?\d+)\.\.(-?\d+)$")
# E.164: '+', the country code, the number; 15 digits at most.
_INTERNATIONAL = re.compile(r"\+[1-9][0-9]{6,14}")
NC_COUNTRY_CODE = "+687"


def flag_for(key: str) -> str:
    """The command-line flag that sets config key ``key``."""
    return _WHERE.get(key) or "--" + key.replace("_", "-")


def describe_problem(key: str, why: str, value: object = None) -> str:
    """One validator finding in the technician's words, naming the flag."""
    match = _INT_RANGE.match(why)
    if match:
        text = f"must be a whole number from {match.group(1)} to {match.group(2)}"
    else:
        text = _WHY.get(why, why.replace("_", " "))
    hidden = value is None or key in ("key", "police_numbers")  # never print the key
    shown = "" if hidden else " " + shlex.quote(str(value))
    return f"{flag_for(key)}{shown}: {text}"


def international_problem(special_number: str) -> str | None:
    """Why ``special_number`` is not in international (E.164) form, else None.

    One form for every handset: the server refuses a number already registered by
    comparing them as written, so '751001' next to '+687751001' would slip through.
    """
    if _INTERNATIONAL.fullmatch(special_number):
        return None
    digits = special_number.lstrip("+")
    example = NC_COUNTRY_CODE + digits if digits.isdigit() and len(digits) == 6 else "+687751001"
    return (f"--special-number {special_number}: give it in international form, '+' and the "
            f"country code (e.g. {example})")


def new_device_key() -> str:
    """32 random bytes from the OS's CSPRNG, as 64 lowercase hex digits."""
    return secrets.token_hex(32)


def _firmware_config_module() -> ModuleType:
    path = fwbuild.firmware_dir() / "tgd" / "config.py"
    spec = importlib.util.spec_from_file_location("tgd_firmware_config", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise InvalidConfig(f"the firmware's config validator {path} is missing")
    module = importlib.util.module_from_spec(spec)
    # The validator imports its sibling firmware modules (tgd.limits): give it the
    # firmware folder for the time of the import only, and forget what it loaded from
    # there (the tgd package included), so no firmware name shadows anything here.
    folder = str(path.parents[1])
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
    found = [describe_problem(k, why, raw.get(k)) for k, why in problems]
    if safe_reason and not problems:
        found.append(f"the handset would run in safe mode ({safe_reason.replace('_', ' ')})")
    if not special_number:
        found.append("--special-number is required: the police recognise the handset by it")
    elif not any(k == "special_number" for k, _ in problems):
        wrong_form = international_problem(special_number)
        if wrong_form:
            found.append(wrong_form)
    if not sms_number:
        found.append("--sms-number is required: the AML SMS must have somewhere to go")
    if found:
        raise InvalidConfig("; ".join(found))
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
