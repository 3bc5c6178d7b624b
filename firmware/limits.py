# The integer settings: default and accepted range. Shared by config.py (boot) and
# the server's `config` command (uplink.py), without loading all of config.py.

# key: (default, lowest, highest)
INT_KEYS = {
    "trigger_hold_ms": (2000, 500, 10000),
    "heartbeat_interval_s": (1800, 60, 86400),
    "track_interval_s": (30, 5, 3600),
    "call_retries": (5, 0, 50),
    "alarm_timeout_s": (14400, 60, 604800),
    "low_battery_mv": (3550, 3000, 4300),
    "cutoff_mv": (3350, 2800, 4000),
}


def check_int(key, value):
    """None when `value` suits `key`, else why not."""
    _, low, high = INT_KEYS[key]
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        return "not_an_int_in_%d..%d" % (low, high)
    return None
