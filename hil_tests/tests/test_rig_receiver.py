"""The serial backend's police receiver, on an emulated SIM7600 behind a pty.

The receiver is plain pyserial AT code; here the modem at the other end of the
line is the emulator instead of a real SIM7600, and a second emulated modem (driven
by AT commands) is the handset calling it and sending it an SMS.
"""

from __future__ import annotations

import pytest

from tgd_rig.emulator import Network, Sim7600Emulator, Timing
from tgd_rig.emulator.client import boot
from tgd_rig.receiver import Receiver
from tgd_rig.rig import EventBus

RECEIVER_NUMBER = "+687751999"
HANDSET_NUMBER = "+687751001"


@pytest.fixture
def network():
    net = Network(timing=Timing.fast(0.02), seed=3)
    net.start()
    yield net
    net.stop()


def test_receiver_answers_the_call_and_reads_the_sms(network):
    bus = EventBus()
    receiving_modem = Sim7600Emulator(network, msisdn=RECEIVER_NUMBER, imei="861234567800099")
    boot(receiving_modem).close()   # powered on and registered; the receiver takes the port
    receiver = Receiver(receiving_modem.port,
                        lambda kind, t=None, **data: bus.emit("receiver", kind, t=t, **data),
                        answer_after_s=0.2)
    receiver.open()
    handset = Sim7600Emulator(network, msisdn=HANDSET_NUMBER)
    at = boot(handset)
    try:
        at.command(f"ATD{RECEIVER_NUMBER};")
        dial = bus.wait_for(lambda e: e.kind == "call_ringing", 10, what="the call ringing")
        assert dial.data["caller"] == HANDSET_NUMBER
        answered = bus.wait_for(lambda e: e.kind == "call_answered", 10, what="ATA")
        assert answered.t >= dial.t + 0.2
        at.expect(b"VOICE CALL: BEGIN", 10)
        at.command("AT+CHUP")
        bus.wait_for(lambda e: e.kind == "call_ended", 10, what="the end of the call")

        at.command("AT+CMGF=1")
        at.send(f'AT+CMGS="{RECEIVER_NUMBER}"')
        at.expect(b">", 5)
        at.write(b'A"ML=1;lt=+22.27580;pm=G\x1a')
        at.expect(b"OK\r\n", 10)
        sms = bus.wait_for(lambda e: e.kind == "sms_delivered", 15, what="the SMS read")
        assert sms.data["sender"] == HANDSET_NUMBER
        assert sms.data["text"] == 'A"ML=1;lt=+22.27580;pm=G'
        assert not [e for e in bus.snapshot() if e.kind == "receiver_error"]
    finally:
        at.close()
        receiver.close()
