# Handset configuration (config.json at the flash root, docs/interfaces.md §6).
# Validation is a pure function: the caller reads the file and logs the problems.
import json

from tgd.limits import INT_KEYS as _INT_KEYS
from tgd.limits import check_int

SCHEMA_VERSION = 1

_REQUIRED = ("device_id", "key", "server_url")
_KNOWN = ("config_version", "device_id", "key", "special_number", "emergency_number",
          "sms_number", "server_url", "apn", "transport", "mqtt_url", "mqtt_tls",
          "police_numbers", "release_pub") + tuple(_INT_KEYS)


class ConfigError(Exception):
    pass


def defaults():
    cfg = {"config_version": SCHEMA_VERSION, "device_id": None, "key": None,
           "special_number": "", "emergency_number": "17", "sms_number": "",
           "server_url": None, "apn": "", "transport": "http", "mqtt_url": "",
           "mqtt_tls": False, "release_pub": ""}
    # Every path gets a list, safe mode included (callback.py tests `number in` it).
    cfg["police_numbers"] = [cfg["emergency_number"]]
    for k in _INT_KEYS:
        cfg[k] = _INT_KEYS[k][0]
    return cfg


def _is_device_id(v):
    if not isinstance(v, str) or not 1 <= len(v) <= 32:
        return False
    for c in v:
        if not (c.isalpha() or c.isdigit() or c in "_-") or ord(c) > 127:
            return False
    return True


def _is_hex64(v):
    if not isinstance(v, str) or len(v) != 64:
        return False
    for c in v:
        if c not in "0123456789abcdefABCDEF":
            return False
    return True


def _is_phone(v, allow_empty):
    if not isinstance(v, str):
        return False
    if v == "":
        return allow_empty
    body = v[1:] if v[0] == "+" else v
    return 1 <= len(body) <= 20 and body.isdigit()


def _is_url(v):
    return isinstance(v, str) and len(v) <= 200 and (
        v.startswith("http://") or v.startswith("https://")) and " " not in v


def _is_mqtt_url(v):
    # "" is "none" (the default, written out by the flashing tool)
    return v == "" or isinstance(v, str) and 6 < len(v) <= 200 and v.startswith(
        "tcp://") and " " not in v and '"' not in v


def _check(key, v):
    """None when `v` is acceptable for `key`, else why not."""
    if key == "device_id":
        return None if _is_device_id(v) else "not_[A-Za-z0-9_-]{1,32}"
    if key == "key":
        return None if _is_hex64(v) else "not_64_hex_digits"
    if key == "server_url":
        return None if _is_url(v) else "not_an_http(s)_url"
    if key == "emergency_number":
        return None if _is_phone(v, False) else "not_a_number"
    if key in ("special_number", "sms_number"):
        return None if _is_phone(v, True) else "not_a_number"
    if key == "apn":
        # no quote and no control character: it goes inside AT+CGDCONT's quotes
        return None if (isinstance(v, str) and len(v) <= 64 and '"' not in v
                        and not [c for c in v if ord(c) < 32 or ord(c) == 127]) else "bad_apn"
    if key == "transport":
        return None if v in ("http", "mqtt") else "not_http_or_mqtt"
    if key == "mqtt_url":  # the SIM7600 wants tcp:// even for TLS (mqtt_tls says TLS)
        return None if _is_mqtt_url(v) else "not_tcp://host:port"
    if key == "police_numbers":  # callers answered silently during and after an alarm
        ok = isinstance(v, list) and len(v) <= 8
        for n in v if ok else ():
            ok = ok and isinstance(n, str) and _is_phone(n.replace(" ", ""), False)
        return None if ok else "not_a_list_of_up_to_8_numbers"
    if key == "release_pub":  # Ed25519 public key of the releases (tgd/ota/offer.py); "" = no update
        return None if v == "" or _is_hex64(v) else "not_64_hex_digits"
    if key == "mqtt_tls":
        return None if v is True or v is False else "not_true_or_false"
    if key == "config_version":
        return None if v == SCHEMA_VERSION else "unsupported_version"
    if key in _INT_KEYS:
        return check_int(key, v)
    return "unknown_key"


def validate(raw):
    """Return (cfg, problems, safe_reason).

    cfg always holds every key (defaults where `raw` lacks or spoils them).
    problems: list of (key, why) to log. safe_reason: None for a complete config,
    else why the handset runs in safe mode (call and AML SMS only).
    """
    cfg = defaults()
    problems = []
    if not isinstance(raw, dict):
        return cfg, [("config", "not_a_json_object")], "not_a_json_object"
    for key in raw:
        why = _check(key, raw[key]) if key in _KNOWN else "unknown_key"
        if why is None:
            cfg[key] = raw[key]
        else:
            problems.append((key, why))
    if cfg["cutoff_mv"] >= cfg["low_battery_mv"]:
        problems.append(("cutoff_mv", "not_below_low_battery_mv"))
        cfg["cutoff_mv"] = _INT_KEYS["cutoff_mv"][0]
        cfg["low_battery_mv"] = _INT_KEYS["low_battery_mv"][0]
    if cfg["transport"] == "mqtt" and not cfg["mqtt_url"]:
        problems.append(("mqtt_url", "missing_for_mqtt:http_used"))
        cfg["transport"] = "http"
    if "police_numbers" in raw and _check("police_numbers", raw["police_numbers"]) is None:
        # compared with the caller id as digits: "+687 27 12 34" is "+687271234"
        cfg["police_numbers"] = [n.replace(" ", "") for n in cfg["police_numbers"]]
    else:  # not given (or spoiled): the configured emergency number
        cfg["police_numbers"] = [cfg["emergency_number"]]
    if cfg["key"] is not None:
        cfg["key"] = cfg["key"].lower()
    cfg["release_pub"] = cfg["release_pub"].lower()
    missing = [k for k in _REQUIRED if cfg[k] is None]
    safe = None
    if missing:
        safe = "missing_or_invalid_" + "+".join(missing)
    return cfg, problems, safe


def parse(text):
    """Validate the text of config.json (bytes or str)."""
    try:
        raw = json.loads(text)
    except (ValueError, TypeError):
        return validate(None)[0], [("config", "malformed_json")], "malformed_json"
    return validate(raw)


def load(path):
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError:
        return defaults(), [("config", "no_config_file")], "no_config_file"
    return parse(text)
