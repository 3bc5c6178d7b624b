# config.json validation: defaults, ranges, safe mode.
import json

from tgd import config

KEY = "ab" * 32
GOOD = {"config_version": 1, "device_id": "NC0001", "key": KEY,
        "special_number": "+687751001", "emergency_number": "17", "sms_number": "+687700100",
        "server_url": "http://127.0.0.1:8080/api/v1/device/messages", "apn": "mobilis",
        "transport": "http", "trigger_hold_ms": 2000, "heartbeat_interval_s": 1800,
        "track_interval_s": 30, "call_retries": 5, "alarm_timeout_s": 14400,
        "low_battery_mv": 3550, "cutoff_mv": 3350}


def test_complete_config_is_accepted_as_is():
    cfg, problems, safe = config.validate(dict(GOOD))
    assert safe is None and problems == []
    for k in GOOD:
        assert cfg[k] == GOOD[k], k


def test_minimal_config_takes_defaults():
    cfg, problems, safe = config.parse(json.dumps(
        {"device_id": "NC0002", "key": KEY.upper(), "server_url": "https://tgd.opt.nc/x"}))
    assert safe is None and problems == []
    assert cfg["emergency_number"] == "17"
    assert cfg["trigger_hold_ms"] == 2000
    assert cfg["heartbeat_interval_s"] == 1800
    assert cfg["call_retries"] == 5
    assert cfg["key"] == KEY  # normalised to lowercase


def test_missing_required_means_safe_mode():
    for k in ("device_id", "key", "server_url"):
        raw = dict(GOOD)
        del raw[k]
        cfg, problems, safe = config.validate(raw)
        assert safe is not None and k in safe, (k, safe)
        # the call and the AML SMS still have what they need
        assert cfg["emergency_number"] == "17" and cfg["sms_number"] == "+687700100"


def test_invalid_required_means_safe_mode():
    for k, bad in (("key", "abc"), ("key", "zz" * 32), ("device_id", "NC 01"),
                   ("device_id", ""), ("server_url", "ftp://x"), ("device_id", 7)):
        raw = dict(GOOD)
        raw[k] = bad
        cfg, problems, safe = config.validate(raw)
        assert safe is not None, (k, bad)
        assert (k, problems[0][1]) == problems[0] and problems[0][0] == k


def test_bad_optional_values_fall_back_to_defaults():
    for k, bad in (("trigger_hold_ms", 10), ("trigger_hold_ms", "2000"), ("call_retries", -1),
                   ("track_interval_s", True), ("heartbeat_interval_s", 10 ** 9),
                   ("sms_number", "12ab"), ("emergency_number", ""), ("transport", "smtp"),
                   ("config_version", 2), ("apn", 'a"b'), ("apn", "mobilis\r\nATD112;")):
        raw = dict(GOOD)
        raw[k] = bad
        cfg, problems, safe = config.validate(raw)
        assert safe is None, (k, bad)
        assert [p[0] for p in problems] == [k], (k, problems)
        assert cfg[k] == config.defaults()[k], (k, cfg[k])


def test_unknown_key_is_reported_and_ignored():
    raw = dict(GOOD)
    raw["trigger_hold"] = 100
    cfg, problems, safe = config.validate(raw)
    assert safe is None and problems == [("trigger_hold", "unknown_key")]
    assert "trigger_hold" not in cfg


def test_cutoff_must_be_below_low_battery():
    raw = dict(GOOD)
    raw["cutoff_mv"] = 3600
    cfg, problems, safe = config.validate(raw)
    assert ("cutoff_mv", "not_below_low_battery_mv") in problems
    assert cfg["cutoff_mv"] < cfg["low_battery_mv"]


def test_garbage_text_means_safe_mode_with_defaults():
    for text in (b"", b"{", b"\xff\xfe", b"[1,2]", b"null", b'"x"'):
        cfg, problems, safe = config.parse(text)
        assert safe is not None, text
        assert cfg["emergency_number"] == "17"


def test_missing_file_means_safe_mode():
    cfg, problems, safe = config.load("/nonexistent/config.json")
    assert safe == "no_config_file"


def test_safe_mode_paths_answer_the_emergency_number_back():
    # No config.json, or one that is not JSON: the handset still calls 17, and 17 calling
    # back is a police call-back (callback.py tests `number in police_numbers`).
    for cfg, problems, safe in (config.load("/nonexistent/config.json"),
                                config.parse(b"{not json"), config.validate([1])):
        assert safe is not None, safe
        assert cfg["police_numbers"] == ["17"], cfg["police_numbers"]
        assert "17" in cfg["police_numbers"] and "+687999" not in cfg["police_numbers"]


def test_police_numbers_follow_the_emergency_number_unless_given():
    raw = dict(GOOD)
    raw["emergency_number"] = "112"
    assert config.validate(raw)[0]["police_numbers"] == ["112"]
    raw["police_numbers"] = "17"  # invalid: the default, not the spoiled value
    assert config.validate(raw)[0]["police_numbers"] == ["112"]
    raw["police_numbers"] = []
    assert config.validate(raw)[0]["police_numbers"] == []
