# The integer settings: default and accepted range. Shared by config.py (boot) and
# the server's `config` command (uplink/commands.py).

# key: (default, lowest, highest)
INT_KEYS = {
    "trigger_hold_ms": (2000, 500, 10000),
    "heartbeat_interval_s": (1800, 60, 86400),
    "track_interval_s": (30, 5, 3600),
    "call_retries": (5, 0, 50),
    "alarm_timeout_s": (14400, 60, 604800),
    "low_battery_mv": (3550, 3000, 4300),
    "cutoff_mv": (3350, 2800, 4000),
    "callback_window_s": (3600, 0, 86400),  # police call-back answered this long after an alarm
    "ota_min_bat_mv": (3700, 3300, 4300),  # an update downloads only above this (tgd/ota/run.py)
}


def check_int(key, value):
    """None when `value` suits `key`, else why not."""
    _, low, high = INT_KEYS[key]
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        return "not_an_int_in_%d..%d" % (low, high)
    return None


_SETTABLE = ("heartbeat_interval_s", "track_interval_s", "call_retries", "alarm_timeout_s",
             "low_battery_mv", "cutoff_mv")


def apply_config(dev, changes):
    """The server's `config` command: validated like config.json, applied in memory."""
    if not isinstance(changes, dict):
        return
    for key in changes:
        value = changes[key]
        why = check_int(key, value) if key in _SETTABLE else "not_settable"
        if why is None:
            dev.cfg[key] = value
            dev.log.event("CONFIG_SET", key=key, value=value)
        else:
            dev.log.event("ERROR", where="command", what=key + ":" + why)
    if dev.cfg["cutoff_mv"] >= dev.cfg["low_battery_mv"]:
        dev.log.event("ERROR", where="command", what="cutoff_mv_not_below_low_battery_mv")
        dev.cfg["cutoff_mv"] = dev.cfg["low_battery_mv"] - 100
