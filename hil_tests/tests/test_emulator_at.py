"""The emulator driven through its pty like a modem user: byte-exact answers, boot,
echo, error modes, strictness, identity, radio, GNSS, time, power."""

import time

import pytest

from tgd_rig.emulator import Sim7600Emulator, Timing, Track
from tgd_rig.emulator.client import AtClient, boot

BOOT = b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\nSMS DONE\r\n\r\nPB DONE\r\n"
BLANCHOT = (-22.2789, 166.4582)  # right under cell 20593, Noumea Faubourg Blanchot


@pytest.fixture
def modem(net):
    m = Sim7600Emulator(net, msisdn="+687751001", imei="866123040000011",
                        iccid="8968701000000000011F", track=Track.fixed(*BLANCHOT))
    m.open()
    yield m
    m.close()


def test_boot_sequence_is_byte_exact_and_nothing_answers_before(modem):
    client = AtClient(modem.port, modem.transcript)
    client.send("AT")  # the modem is off: lost
    assert client.read_for(0.05) == b""
    modem.power_on()
    client.send("AT")  # still booting: lost too
    assert client.expect(b"PB DONE\r\n") == BOOT
    assert client.read_for(0.05) == b""  # the two early ATs were never answered
    assert client.command("AT") == b"AT\r\r\nOK\r\n"  # echo on after boot
    assert [e for e in modem.transcript.entries() if e.direction == "lost"]


def test_echo_until_ate0(modem):
    client = boot(modem)
    assert client.command("AT+CSQ").startswith(b"AT+CSQ\r\r\n+CSQ: ")
    assert client.command("ATE0") == b"ATE0\r\r\nOK\r\n"
    assert client.command("AT") == b"\r\nOK\r\n"
    assert client.command("ATE1") == b"\r\nOK\r\n"
    assert client.command("AT") == b"AT\r\r\nOK\r\n"


def test_cr_lf_and_backspace_tolerated(at):
    at.write(b"AT+CBX\x08C\r\n")
    assert at.expect(b"OK\r\n") == b"\r\n+CBC: 4.000V\r\n\r\nOK\r\n"


@pytest.mark.parametrize(
    "command",
    [
        "AT+FOO",            # unknown command
        "AT+CSQ=1",          # wrong form
        "AT+CMEE=3",         # out of range
        "AT+CREG=1,2",       # too many arguments
        'AT+CGDCONT=1,"XX","apn"',
        "ATD17",             # no ';': a data call
        "AT+HTTPPARA=\"URL\",\"http://x\"",  # before HTTPINIT
        "AT+HTTPACTION=1",   # before HTTPINIT
        "AT+VMUTE=1",        # outside a call
        "AT+CMUT=1",
        "AT+CGPS=0",         # GNSS already off
        "AT+CLVL=6",
        "ATV0",
    ],
)
def test_strict_errors(at, command):
    assert at.command(command) == b"\r\nERROR\r\n"


def test_cme_error_modes(at, modem):
    modem.inject("no_sim")
    assert at.command("AT+CPIN?") == b"\r\nERROR\r\n"
    at.command("AT+CMEE=1")
    assert at.command("AT+CPIN?") == b"\r\n+CME ERROR: 10\r\n"
    at.command("AT+CMEE=2")
    assert at.command("AT+CPIN?") == b"\r\n+CME ERROR: SIM not inserted\r\n"
    assert at.command("AT+CICCID") == b"\r\n+CME ERROR: SIM not inserted\r\n"
    assert at.command("AT+CMEE?") == b"\r\n+CMEE: 2\r\n\r\nOK\r\n"


def test_identity_and_battery(at, modem):
    assert at.command("AT+CGSN") == b"\r\n866123040000011\r\n\r\nOK\r\n"
    assert at.command("AT+CICCID") == b"\r\n+ICCID: 8968701000000000011F\r\n\r\nOK\r\n"
    assert at.command("AT+CNUM") == b'\r\n+CNUM: "","+687751001",145\r\n\r\nOK\r\n'
    assert at.command("AT+CPIN?") == b"\r\n+CPIN: READY\r\n\r\nOK\r\n"
    modem.battery_mv = 3591
    assert at.command("AT+CBC") == b"\r\n+CBC: 3.591V\r\n\r\nOK\r\n"
    modem.inject("battery", mv=3402)
    assert at.command("AT+CBC") == b"\r\n+CBC: 3.402V\r\n\r\nOK\r\n"
    assert at.command("AT+CPMUTEMP") == b"\r\n+CPMUTEMP: 29\r\n\r\nOK\r\n"


def test_registration_reads_and_serving_cell(at):
    assert at.command("AT+CREG?") == b"\r\n+CREG: 0,1\r\n\r\nOK\r\n"
    at.command("AT+CREG=2")
    assert at.command("AT+CREG?") == b'\r\n+CREG: 2,1,"1100","5071"\r\n\r\nOK\r\n'
    at.command("AT+CEREG=2")
    assert at.command("AT+CEREG?") == b'\r\n+CEREG: 2,1,"1100","5071",7\r\n\r\nOK\r\n'
    assert at.command("AT+CGREG?") == b"\r\n+CGREG: 0,1\r\n\r\nOK\r\n"
    assert at.command("AT+COPS?") == b'\r\n+COPS: 0,0,"MOBILIS",7\r\n\r\nOK\r\n'
    cpsi = at.command("AT+CPSI?")
    assert cpsi.startswith(b"\r\n+CPSI: LTE,Online,546-01,0x1100,20593,")
    assert cpsi.endswith(b"\r\n\r\nOK\r\n")
    csq = at.command("AT+CSQ")
    rssi = int(csq.split(b": ")[1].split(b",")[0])
    assert 20 <= rssi <= 31


def test_other_radio_technology(net):
    m = Sim7600Emulator(net, msisdn="+687751002", track=Track.fixed(*BLANCHOT), rat="GSM")
    client = boot(m)
    try:
        cpsi = client.command("AT+CPSI?")
        assert cpsi.startswith(b"AT+CPSI?\r\r\n+CPSI: GSM,Online,546-01,0x00c9,11001,27 EGSM 900,")
        assert client.command("AT+COPS?").endswith(b'"MOBILIS",0\r\n\r\nOK\r\n')
    finally:
        client.close()
        m.close()


def test_network_time_needs_ctzu_and_registration(at):
    before = at.command("AT+CCLK?")
    assert before.startswith(b'\r\n+CCLK: "80/01/06,00:0')
    at.command("AT+CTZU=1")
    line = at.command("AT+CCLK?")
    now = time.gmtime(time.time() + 11 * 3600)
    assert line.startswith(b'\r\n+CCLK: "' + time.strftime("%y/%m/%d,%H:", now).encode())
    assert line.endswith(b'+44"\r\n\r\nOK\r\n')


def test_gnss_fix_after_ttff_from_true_position(at, modem):
    assert at.command("AT+CGPS?") == b"\r\n+CGPS: 0,1\r\n\r\nOK\r\n"
    assert at.command("AT+CGPS=1") == b"\r\nOK\r\n"
    assert at.command("AT+CGPS=1") == b"\r\nERROR\r\n"  # already on
    assert at.command("AT+CGPS?") == b"\r\n+CGPS: 1,1\r\n\r\nOK\r\n"
    assert at.command("AT+CGNSSINFO") == b"\r\n+CGNSSINFO: ,,,,,,,,,,,,,,,\r\n\r\nOK\r\n"
    time.sleep(0.4)  # fast cold start: 0.25..0.35 s
    line = at.command("AT+CGPSINFO").split(b"\r\n")[1].decode()
    fields = line.split(": ")[1].split(",")
    lat = -(int(fields[0][:2]) + float(fields[0][2:]) / 60)
    lon = int(fields[2][:3]) + float(fields[2][3:]) / 60
    assert fields[1] == "S" and fields[3] == "E"
    assert abs(lat - BLANCHOT[0]) < 0.0002 and abs(lon - BLANCHOT[1]) < 0.0002  # ~20 m
    assert at.command("AT+CGNSSINFO").startswith(b"\r\n+CGNSSINFO: 3,")
    assert at.command("AT+CGPS=0") == b"\r\nOK\r\n"
    assert at.expect(b"\r\n+CGPS: 0\r\n", 2)
    assert at.command("AT+CGPSINFO") == b"\r\n+CGPSINFO: ,,,,,,,,\r\n\r\nOK\r\n"
    # Hot start now: a fix within ~10 ms (fast timing).
    at.command("AT+CGPS=1")
    time.sleep(0.05)
    assert at.command("AT+CGPSINFO") != b"\r\n+CGPSINFO: ,,,,,,,,\r\n\r\nOK\r\n"


def test_indoor_has_no_fix(at, modem):
    modem.inject("indoor")
    at.command("AT+CGPS=1")
    time.sleep(0.4)
    assert at.command("AT+CGNSSINFO") == b"\r\n+CGNSSINFO: ,,,,,,,,,,,,,,,\r\n\r\nOK\r\n"
    modem.inject("outdoor")
    assert at.command("AT+CGNSSINFO").startswith(b"\r\n+CGNSSINFO: 3,")


def test_settings_commands(at):
    for command in ("AT+CMGF=1", 'AT+CSCS="GSM"', "AT+CSMP=49,167,0,0", "AT+CNMI=2,1,0,1,0",
                    "AT+CLIP=1", "AT+CLCC=1", "AT+CVHU=0", "AT+CLVL=0", "AT+CTZU=1",
                    'AT+CGDCONT=1,"IP","mobilis"', "AT+CSCLK=1"):
        assert at.command(command) == b"\r\nOK\r\n", command
    assert at.command("AT+CGDCONT?") == (
        b'\r\n+CGDCONT: 1,"IP","mobilis","0.0.0.0",0,0\r\n\r\nOK\r\n')
    assert at.command("AT+CSMP?") == b"\r\n+CSMP: 49,167,0,0\r\n\r\nOK\r\n"
    assert at.command("AT+CNMI?") == b"\r\n+CNMI: 2,1,0,1,0\r\n\r\nOK\r\n"


def test_netopen(at):
    assert at.command("AT+NETOPEN") == b"\r\nOK\r\n"
    assert at.expect(b"\r\n+NETOPEN: 0\r\n", 2)
    assert at.command("AT+NETOPEN") == (
        b"\r\n+IP ERROR: Network is already opened\r\n\r\nERROR\r\n")
    assert at.command("AT+NETOPEN?") == b"\r\n+NETOPEN: 1\r\n\r\nOK\r\n"


def test_creset_reboots_with_state_lost(at, modem, net):
    at.command("AT+CMEE=2")
    assert at.command("AT+CRESET") == b"\r\nOK\r\n"
    assert at.expect(b"PB DONE\r\n", 3).endswith(BOOT)
    assert at.command("AT") == b"AT\r\r\nOK\r\n"  # echo back on: settings were lost
    assert [e["reason"] for e in net.events_of("modem_off")] == ["AT+CRESET"]


def test_cpof_powers_off(at, modem):
    assert at.command("AT+CPOF") == b"\r\nOK\r\n"
    time.sleep(0.1)
    assert modem.power == "off"
    at.send("AT")
    assert at.read_for(0.1) == b""


def test_transcript_formats_both_directions(at, modem):
    at.command("AT+CSQ")
    text = modem.transcript.format(10)
    assert "rx   AT+CSQ\\r" in text and "tx   \\r\\n+CSQ:" in text


def test_first_fix_event_reports_error_against_truth(at, modem, net):
    at.command("AT+CGPS=1")
    time.sleep(0.4)
    at.command("AT+CGNSSINFO")
    at.command("AT+CGNSSINFO")
    [event] = net.events_of("gnss_first_fix")
    assert event["error_m"] < 20 and event["since_start_s"] >= 0.25
    assert (event["true_lat"], event["true_lon"]) == BLANCHOT


def test_moving_track_changes_serving_cell(net):
    from pathlib import Path

    car = Track.from_nmea(Path(__file__).resolve().parents[1] / "tgd_rig" / "data" / "tracks"
                          / "car_noumea_mont_dore.nmea")
    m = Sim7600Emulator(net, msisdn="+687751003", track=car)
    client = boot(m)
    try:
        client.command("AT+CEREG=2")
        first = client.command("AT+CPSI?").split(b",")[4]
        m._t0 -= 900  # jump 15 minutes along the track: Mont-Dore
        # The cell change is reported at the next tick (n=2: with the new TAC and cell id).
        assert client.expect(b'\r\n+CEREG: 1,"1108","5081",7\r\n', 3)
        last = client.command("AT+CPSI?").split(b",")[4]
        assert (first, last) == (b"20481", b"20609")  # Noumea Centre -> Mont-Dore Boulari
        pos = m.true_position()
        assert pos.lon > 166.56
    finally:
        client.close()
        m.close()


def test_boot_delay_is_respected(net):
    from dataclasses import replace

    net.timing = replace(Timing.fast(0.01), boot_s=(0.3, 0.3))
    m = Sim7600Emulator(net, msisdn="+687751004", track=Track.fixed(*BLANCHOT))
    m.open()
    client = AtClient(m.port, m.transcript)
    try:
        m.power_on()
        assert client.read_for(0.2) == b""  # not before the boot delay
        assert client.expect(b"PB DONE\r\n", 3) == BOOT
    finally:
        client.close()
        m.close()


def test_mqtt_needs_service_and_client_first(at):
    # The MQTT commands themselves: test_emulator_mqtt.py (against a real broker).
    assert at.command('AT+CMQTTACCQ=0,"x",0') == b"\r\nERROR\r\n"


def test_transcript_dump(at, modem, tmp_path):
    at.command("AT+CGSN")
    path = modem.transcript.dump(str(tmp_path / "modem.log"))
    text = open(path, encoding="utf-8").read()
    assert "note open" in text and "rx   AT+CGSN\\r" in text and "866123040000011" in text


def test_network_time_kept_when_coverage_goes(at, modem):
    at.command("AT+CTZU=1")
    at.command("AT+CCLK?")
    modem.inject("no_service")
    assert at.command("AT+CCLK?").endswith(b'+44"\r\n\r\nOK\r\n')


def test_cgpscold_and_cgpshot_need_gnss_off(at, net):
    assert at.command("AT+CGPSCOLD") == b"\r\nOK\r\n"
    assert at.command("AT+CGPSHOT") == b"\r\nERROR\r\n"  # GNSS is on now
    assert at.command("AT+CGPS?") == b"\r\n+CGPS: 1,1\r\n\r\nOK\r\n"
    assert [e["hot"] for e in net.events_of("gnss_start")] == [False]


def test_a_required_apn_gates_packet_data_until_the_pdp_context_names_it(at, net):
    net.required_apn = "mobilis"
    assert at.command("AT+NETOPEN") == b"\r\nOK\r\n"  # default context: no data connection
    assert at.expect(b"\r\n+NETOPEN: 1\r\n", 2)
    assert at.command("AT+CMQTTSTART") == b"\r\nOK\r\n"
    assert at.expect(b"\r\n+CMQTTSTART: 7\r\n", 2)
    assert at.command('AT+CGDCONT=1,"IP","internet"') == b"\r\nOK\r\n"  # a wrong APN
    assert at.command("AT+NETOPEN") == b"\r\nOK\r\n"
    assert at.expect(b"\r\n+NETOPEN: 1\r\n", 2)
    assert at.command('AT+CGDCONT=1,"IP","mobilis"') == b"\r\nOK\r\n"
    assert at.command("AT+NETOPEN") == b"\r\nOK\r\n"
    assert at.expect(b"\r\n+NETOPEN: 0\r\n", 2)
    assert at.command("AT+CMQTTSTART") == b"\r\nOK\r\n"
    assert at.expect(b"\r\n+CMQTTSTART: 0\r\n", 2)
