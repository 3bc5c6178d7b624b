"""The emulated SIM7600's sleep mode (sim7600-at.md "Power"): with AT+CSCLK=1 and DTR
high it sleeps after 15-20 s idle (fast timing: x0.01); asleep, bytes sent to it are
lost; DTR low wakes it and it listens 20 ms later; a URC while asleep pulses RI and
still goes out. Sleep, wake and RI are in the transcript for `tgd-rig power`."""

from __future__ import annotations

import time

from rig_testkit import wait_until

from tgd_rig.emulator.transcript import LOST, RI, SLEEP, WAKE


def _kinds(modem, kind: str) -> list[bytes]:
    return [e.data for e in modem.transcript.entries() if e.direction == kind]


def _asleep(modem, at) -> None:
    assert at.command("AT+CSCLK=1").endswith(b"\r\nOK\r\n")
    modem.set_dtr(True)
    assert wait_until(lambda: modem.asleep), modem.transcript.format(20)


def test_csclk_set_and_read(modem, at):
    assert at.command("AT+CSCLK=1") == b"\r\nOK\r\n"
    assert at.command("AT+CSCLK?") == b"\r\n+CSCLK: 1\r\n\r\nOK\r\n"
    assert at.command("AT+CSCLK=0") == b"\r\nOK\r\n"
    assert at.command("AT+CSCLK=3").endswith(b"ERROR\r\n")


def test_a_command_sent_while_asleep_is_lost_and_dtr_low_wakes_it(modem, at):
    _asleep(modem, at)
    assert _kinds(modem, SLEEP)
    at.send("AT+CSQ")
    assert at.read_for(0.3) == b""                     # no echo, no answer: the bytes are gone
    assert b"AT+CSQ\r" in b"".join(_kinds(modem, LOST))
    modem.set_dtr(False)
    assert not modem.asleep and _kinds(modem, WAKE) == [b"DTR low"]
    time.sleep(0.03)                                   # it listens 20 ms after DTR falls
    assert at.command("AT+CSQ").endswith(b"\r\nOK\r\n")


def test_no_sleep_without_csclk_nor_with_dtr_low(modem, at):
    modem.set_dtr(True)                                # CSCLK=0 (the default): DTR alone does nothing
    time.sleep(0.5)                                    # 2.5 x the longest fast sleep delay
    assert not modem.asleep
    modem.set_dtr(False)
    time.sleep(0.03)
    assert at.command("AT+CSCLK=1").endswith(b"OK\r\n")
    time.sleep(0.5)                                    # CSCLK=1 but DTR low: awake
    assert not modem.asleep and not _kinds(modem, SLEEP)
    assert at.command("AT").endswith(b"OK\r\n")


def test_activity_restarts_the_idle_time(modem, at, net):
    assert at.command("AT+CSCLK=1").endswith(b"OK\r\n")
    modem.set_dtr(True)
    low, _ = net.timing.sleep_after_s
    for _ in range(6):                                 # a command every half sleep delay
        time.sleep(low / 2)
        if modem.asleep:
            break                                      # (a starved test thread: checked below)
        at.command("AT")
    entries = modem.transcript.entries()
    sleeps = [e.t for e in entries if e.direction == SLEEP]
    rx = [e.t for e in entries if e.direction == "rx"]
    # it never slept less than the sleep delay after a byte it took
    assert all(s - max(t for t in rx if t < s) >= low * 0.99 for s in sleeps)


def test_a_urc_while_asleep_pulses_ri_and_is_still_sent(modem, at, net):
    _asleep(modem, at)
    net.call_in_loop(modem.urc, '+CMTI: "SM",3')
    assert at.expect(b'+CMTI: "SM",3\r\n', 2.0)
    assert _kinds(modem, RI) == [b"120 ms"]            # an SMS: the long pulse
    net.call_in_loop(modem.urc, "+CREG: 1")
    at.expect(b"+CREG: 1\r\n", 2.0)
    assert _kinds(modem, RI)[-1] == b"60 ms"
    assert modem.asleep                                # it sent them and sleeps on


def test_power_off_ends_the_sleep(modem, at):
    _asleep(modem, at)
    modem.power_off()
    assert not modem.asleep and _kinds(modem, WAKE)[-1] == b"power off"
