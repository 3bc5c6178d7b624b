"""The standby power budget: transcript reading and budget arithmetic on fixed
records (pure functions), and one short emulated standby run that must count what
the firmware really did."""

from __future__ import annotations

import pytest
from rig_testkit import needs_firmware

from tgd_rig import power
from tgd_rig.emulator.timing import Timing
from tgd_rig.errors import RigError
from tgd_rig.power import Activity, BurstKind, Current, Exchange

RX, TX = "rx", "tx"


def test_command_names_and_payload_lengths():
    assert power.command_name('AT+HTTPPARA="URL","https://x/y?a=1"') == "AT+HTTPPARA"
    assert power.command_name("AT+CPSI?") == "AT+CPSI"
    assert power.command_name("ATD17;") == "ATD"
    assert power.command_name("ATE0") == "ATE0"
    assert power.payload_length("AT+HTTPDATA=152,10000") == 152
    assert power.payload_length("AT+CMQTTPAYLOAD=0,33") == 33
    assert power.payload_length('AT+CMGS="+687700100"') == -1
    assert power.payload_length("AT+CBC") == 0
    assert power.payload_length("AT+HTTPDATA=x") == 0      # malformed: no payload assumed


TRANSCRIPT = [
    (0.00, RX, b"AT+CBC\r"),
    (0.01, TX, b"\r\n+CBC: 3.987V\r\n\r\nOK\r\n"),
    (1.00, RX, b"AT+HTTPDATA=10,5000\r"),
    (1.01, TX, b"\r\nDOWNLOAD\r\n"),
    (1.02, RX, b'{"a":"AT"}'),          # a payload that looks like a command is not one
    (1.03, TX, b"\r\nOK\r\n"),
    (1.10, RX, b"AT+HTTPACTION=1\r"),
    (1.11, TX, b"\r\nOK\r\n"),
    (1.60, TX, b"\r\n+HTTPACTION: 1,200,12\r\n"),
    (2.00, TX, b"\r\nRING\r\n"),
    (3.00, RX, b'AT+CMGS="17"\r'),
    (3.01, TX, b"\r\n> "),
    (3.02, RX, b"AT test\x1a"),         # SMS text up to Ctrl-Z
    (4.00, TX, b"\r\n+CMGS: 3\r\n\r\nOK\r\n"),
]


def test_parse_exchanges_pairs_commands_with_their_answers():
    exchanges, urcs = power.parse_exchanges(TRANSCRIPT)
    assert [e.command for e in exchanges] == ["AT+CBC", "AT+HTTPDATA", "AT+HTTPACTION", "AT+CMGS"]
    cbc, data, action, sms = exchanges
    assert (cbc.t_start, cbc.t_end) == (0.0, 0.01)
    assert cbc.bytes_to_modem == 7 and cbc.bytes_from_modem == len(TRANSCRIPT[1][2])
    assert data.duration_s == pytest.approx(0.03)
    assert data.bytes_to_modem == len(b"AT+HTTPDATA=10,5000\r") + 10
    # HTTPACTION ends with its asynchronous answer, not with its OK
    assert (action.t_start, action.t_end) == (1.10, 1.60)
    assert sms.t_end == 4.00 and sms.bytes_to_modem == len(b'AT+CMGS="17"\r') + len(b"AT test\x1a")
    assert urcs == 1                    # RING


def test_realistic_duration_swaps_the_network_delay_and_the_line_time():
    fast, real = Timing.fast(0.01), Timing.realistic()
    ex = Exchange("AT+HTTPACTION", "AT+HTTPACTION=1", 0.0, 0.5, bytes_to_modem=20,
                  bytes_from_modem=30)
    fast_rtt = (0.3 + 0.8) / 2 * 0.01
    expected = (0.5 - fast_rtt - 50 * 10 / (115200 / 0.01)) + (0.3 + 0.8) / 2 + 50 * 10 / 115200
    assert power.realistic_duration(ex, fast, real) == pytest.approx(expected)
    # a command without a network delay: only the line time changes
    cbc = Exchange("AT+CBC", "AT+CBC", 0.0, 0.001, bytes_to_modem=7, bytes_from_modem=23)
    assert power.realistic_duration(cbc, fast, real) == pytest.approx(
        0.001 - 300 / 11520000 + 300 / 115200)


def test_bursts_group_exchanges_close_together():
    exs = [Exchange("A", "A", 0.0, 0.1), Exchange("B", "B", 0.15, 0.2),
           Exchange("C", "C", 5.0, 5.1)]
    assert [[e.command for e in b] for b in power.group_bursts(exs, 1.0)] == [["A", "B"], ["C"]]


# A fixed record: one hour at 30-minute heartbeats, both chips asleep most of it.
ACTIVITY = Activity(
    heartbeat_interval_s=1800, window_s=3600, scale=0.005, heartbeats=2, http_requests=2,
    sms=0, at_commands=22, bytes_to_modem=1000, bytes_from_modem=600, urcs=0, gnss_on_s=0.0,
    commands={"AT+CBC": 2},
    beat=BurstKind(count=2, at_commands=11, busy_s=0.8, http_s=0.5, span_s=1.0),
    poll=BurstKind(), esp_awake_s=3.0, modem_awake_s=40.0, modem_sleeps=2, dtr_wakes=2)
CURRENTS = {"esp32_active": Current(10, "t"), "esp32_light_sleep": Current(1, "t"),
            "sim7600_idle": Current(5, "t"), "sim7600_sleep": Current(1, "t"),
            "sim7600_lte_data": Current(100, "t"), "sim7600_lte_tail": Current(50, "t"),
            "sim7600_gnss": Current(40, "t")}


def test_modem_sleep_is_read_from_the_transcript_window():
    entries = [(0.5, "sleep", b"x"), (2.0, "wake", b"DTR low"), (2.1, "rx", b"AT\r"),
               (3.0, "sleep", b"x"), (3.5, "ri", b"60 ms"), (4.0, "wake", b"power off"),
               (5.0, "sleep", b"x")]
    # asleep at the window's start (since 0.5), 1..2, 3..4, 5..6
    assert power.modem_sleep_wall(entries, 1.0, 6.0) == (pytest.approx(3.0), 2, 1, 1)
    assert power.modem_sleep_wall([], 1.0, 6.0) == (0.0, 0, 0, 0)


def test_sleep_times_bring_the_run_back_to_realistic_timing():
    fast, real = Timing.fast(0.01), Timing.realistic()
    cbc = Exchange("AT+CBC", "AT+CBC", 0.0, 0.002, bytes_to_modem=7, bytes_from_modem=23)
    esp, modem = power.sleep_times([cbc], window_wall=10.0, esp_slept_wall=9.9,
                                   esp_span_wall=10.0, modem_asleep_wall=9.7, dtr_wakes=1,
                                   scale=0.01, fast=fast, real=real)
    cbc_real = power.realistic_duration(cbc, fast, real)
    assert esp == pytest.approx(0.1 - 0.002 + cbc_real)          # CPU kept as measured
    assert modem == pytest.approx((0.3 - 0.002 - 0.02) / 0.01 + 0.02 + cbc_real)
    # no sleep records at all: awake the whole window
    esp, _ = power.sleep_times([], window_wall=10.0, esp_slept_wall=0.0, esp_span_wall=0.0,
                               modem_asleep_wall=0.0, dtr_wakes=0, scale=0.01, fast=fast,
                               real=real)
    assert esp == pytest.approx(1000.0)


def test_budget_measured_arithmetic():
    b = power.budget_measured(ACTIVITY, CURRENTS)
    esp, modem = 3.0 * 24, 40.0 * 24
    data, tail = 48 * 0.5, 48 * power.LTE_TAIL_S
    expected = (esp * 10 + (86400 - esp) * 1 + data * 100 + tail * 50
                + (modem - data - tail) * 5 + (86400 - modem) * 1) / 3600
    assert b.mah_per_day == pytest.approx(expected)
    assert b.days() == pytest.approx(3000 * 0.8 / expected)
    esp_s = sum(r.seconds for r in b.rows if r.state.startswith("ESP32"))
    modem_s = sum(r.seconds for r in b.rows if r.state.startswith("SIM7600") and "GNSS" not in r.state)
    assert esp_s == pytest.approx(86400) and modem_s == pytest.approx(86400)


def test_autonomy_and_the_target():
    assert power.autonomy_days(100) == pytest.approx(24.0)
    assert power.required_average_ma() == pytest.approx(3000 * 0.8 / 14 / 24)
    with pytest.raises(ValueError):
        power.autonomy_days(0)


def test_activity_round_trips_through_json_and_bad_windows_are_refused():
    assert Activity.from_dict(ACTIVITY.to_dict()) == ACTIVITY
    with pytest.raises(RigError):
        power.build_activity([], [], 0, t_start=5.0, t_end=5.0, scale=0.01,
                             heartbeat_interval_s=300, msisdn="+687", fast=Timing.fast(0.01),
                             real=Timing.realistic())


def test_cli_refuses_bad_arguments(capsys):
    from tgd_rig.cli import main

    assert main(["power", "--heartbeats", "0"]) == 2
    assert main(["power", "--interval", "10"]) == 2
    assert "--heartbeats" in capsys.readouterr().err


def test_an_emulated_standby_run_counts_what_the_firmware_did(rig_workdir):
    needs_firmware()
    a = power.measure_standby(heartbeats=2, interval_s=300, scale=0.01, workdir=rig_workdir)
    assert a.heartbeats == 2
    assert a.http_requests == a.heartbeats
    assert a.beat.count == a.heartbeats
    assert a.sms == 0 and a.gnss_on_s == 0
    assert a.beat.commands.get("AT+HTTPACTION") == 1
    assert "AT+CBC" not in a.poll.commands    # the host board has no ADC: AT+CBC only with a beat
    assert 0.3 < a.beat.http_s < 5.0     # one realistic LTE round trip plus the server
    assert a.bytes_to_modem > 0 and a.bytes_from_modem > 0
    # both chips slept between the beats, and each beat woke the modem with DTR
    assert a.modem_sleeps >= a.heartbeats and a.dtr_wakes >= a.heartbeats
    assert a.modem_asleep_wall_fraction > 0.5 and a.esp_asleep_wall_fraction > 0.5
    assert a.esp_awake_s < a.modem_awake_s < a.window_s
    assert a.findings == []
    (budget,) = power.budgets(a)
    assert budget.days() > power.TARGET_DAYS
