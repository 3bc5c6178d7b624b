"""PWRKEY pulses through the FIFO (docs/interfaces.md §1), and the serial-port backend."""

import socket
import time

import pytest

from tgd_rig.emulator import Sim7600Emulator, Track
from tgd_rig.emulator.client import AtClient

BOOT = b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\nSMS DONE\r\n\r\nPB DONE\r\n"


@pytest.fixture
def modem(net):
    m = Sim7600Emulator(net, msisdn="+687751001", track=Track.fixed(-22.2758, 166.458))
    m.open(pwrkey_fifo=True)
    yield m
    m.close()


def _pulse(modem, seconds):
    with open(modem.pwrkey_path, "wb", buffering=0) as key:
        key.write(b"1")
        time.sleep(seconds)
        key.write(b"0")


def test_short_pulse_does_not_switch_on(modem):
    client = AtClient(modem.port, modem.transcript)
    _pulse(modem, 0.02)
    assert client.read_for(0.3) == b""
    assert modem.power == "off"
    client.close()


def test_pulse_of_100ms_boots_and_short_pulse_when_on_is_ignored(modem, net):
    client = AtClient(modem.port, modem.transcript)
    _pulse(modem, 0.15)
    assert client.expect(b"PB DONE\r\n", 2) == BOOT
    _pulse(modem, 0.5)  # < 2.5 s: stays on
    assert client.command("AT") == b"AT\r\r\nOK\r\n"
    assert modem.power == "on"
    assert len(net.events_of("modem_boot")) == 1
    client.close()


# A >= 2.5 s pulse switching the modem off: test_emulator_faults.py::test_silence_until_power_cycle_via_pwrkey


def test_behind_a_serial_port_url(net):
    """The emulator on a pyserial URL (here socket://, like a USB-serial adapter)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    m = Sim7600Emulator(net, msisdn="+687751002", track=Track.fixed(-22.2758, 166.458))
    m.open(pwrkey_fifo=False, serial_url=f"socket://127.0.0.1:{port}")
    host, _ = listener.accept()
    host.settimeout(2)
    try:
        m.power_on()
        got = b""
        while not got.endswith(b"PB DONE\r\n"):
            got += host.recv(100)
        assert got == BOOT
        host.sendall(b"ATE0\r")
        got = b""
        while not got.endswith(b"OK\r\n"):
            got += host.recv(100)
        assert got == b"ATE0\r\r\nOK\r\n"
    finally:
        host.close()
        listener.close()
        m.close()
