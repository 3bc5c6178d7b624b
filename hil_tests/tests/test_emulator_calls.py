"""Voice calls beyond the first (issue 12): a second ATD while a call is up (refused,
or the first call put on hold), call ids, and the police endpoint's behaviours
(answer and hang up, answer and stay, never answer, busy, reject)."""

import time

import pytest

from tgd_rig.emulator import Sim7600Emulator, Track
from tgd_rig.emulator.client import boot
from tgd_rig.emulator.errors import UnknownFault

HANDSET = "+687751001"


@pytest.fixture
def handset(net):
    m = Sim7600Emulator(net, msisdn=HANDSET, track=Track.fixed(-22.2758, 166.4580))
    at = boot(m)
    at.command("ATE0")
    for command in ("AT+CMEE=2", "AT+CLCC=1", "AT+CVHU=0", "AT+CLIP=1"):
        assert at.command(command) == b"\r\nOK\r\n"
    yield m, at
    at.close()
    m.close()


def _answered(at, call_id=1):
    return at.expect(f'+CLCC: {call_id},0,0,0,0,"17",129\r\n'.encode(), 3)


def test_second_dial_refused_while_a_call_is_active(net, handset):
    police = net.add_police("17", answer_after_s=0.05)
    m, at = handset
    at.command("ATD17;")
    _answered(at)
    assert at.command("ATD17;") == b"\r\n+CME ERROR: operation not allowed\r\n"
    at.command("AT+CMEE=1")
    assert at.command("ATD17;") == b"\r\n+CME ERROR: 3\r\n"
    assert at.command("AT+CLCC") == b'\r\n+CLCC: 1,0,0,0,0,"17",129\r\n\r\nOK\r\n'
    assert len(police.calls) == 1 and police.calls[0].ended_at is None
    assert len(net.events_of("dial_refused", modem=HANDSET)) == 2
    # once it is hung up, the dial goes through (and takes id 1 again)
    assert at.command("AT+CHUP").endswith(b"\r\nVOICE CALL: END: 000000\r\n\r\nOK\r\n")
    assert at.command("ATD17;") == b"\r\nOK\r\n"
    assert at.expect(b'\r\n+CLCC: 1,0,2,0,0,"17",129\r\n', 2)


def test_second_dial_puts_the_active_call_on_hold(net, handset):
    police = net.add_police("17", answer_after_s=0.05)
    m, at = handset
    m.inject("second_call", mode="hold")
    at.command("ATD17;")
    _answered(at)
    assert at.command("ATD17;") == b"\r\nOK\r\n"
    got = _answered(at, 2)
    assert got.startswith(b'\r\n+CLCC: 1,0,1,0,0,"17",129\r\n'
                          b'\r\n+CLCC: 2,0,2,0,0,"17",129\r\n'
                          b'\r\n+CLCC: 2,0,3,0,0,"17",129\r\n'
                          b"\r\nVOICE CALL: BEGIN\r\n"), got
    assert at.command("AT+CLCC") == (b'\r\n+CLCC: 1,0,1,0,0,"17",129\r\n'
                                     b'\r\n+CLCC: 2,0,0,0,0,"17",129\r\n\r\nOK\r\n')
    assert net.events_of("call_held", modem=HANDSET, number="17")
    assert [c.ended_at for c in police.calls] == [None, None]  # the held leg is still up
    # a third call is refused: one call is already held
    assert at.command("ATD17;") == b"\r\n+CME ERROR: operation not allowed\r\n"
    # AT+CHUP ends all calls: one END per call
    got = at.command("AT+CHUP")
    assert got.count(b"VOICE CALL: END: ") == 2 and got.endswith(b"\r\nOK\r\n"), got
    assert at.command("AT+CLCC") == b"\r\nOK\r\n"
    assert [c.end_reason for c in police.calls] == ["caller_hangup", "caller_hangup"]


def test_hold_mode_refuses_while_the_first_call_is_still_ringing(net, handset):
    net.add_police("17", answer_after_s=None)
    m, at = handset
    m.inject("second_call", mode="hold")
    at.command("ATD17;")
    at.expect(b'+CLCC: 1,0,3,0,0,"17",129\r\n', 2)
    assert at.command("ATD17;") == b"\r\n+CME ERROR: operation not allowed\r\n"


def test_second_dial_refused_during_an_answered_police_call_back(net, handset):
    police = net.add_police("17", answer_after_s=0.05)
    m, at = handset
    police.call_back(HANDSET)
    at.expect(b'+CLIP: "17",129,,,"",0\r\n', 2)
    assert at.command("ATA") == b"\r\nOK\r\n"
    at.expect(b'+CLCC: 1,1,0,0,0,"17",129\r\n', 2)
    assert at.command("ATD17;") == b"\r\n+CME ERROR: operation not allowed\r\n"


def test_a_held_call_ended_by_the_police_leaves_the_new_one_up(net, handset):
    police = net.add_police("17", answer_after_s=0.05)
    m, at = handset
    m.inject("second_call", mode="hold")
    at.command("ATD17;")
    _answered(at)
    at.command("ATD17;")
    _answered(at, 2)
    first = police.calls[0]
    net.call_in_loop(police._live[next(iter(police._live))].remote_hangup, "police_hangup")
    assert at.expect(b"VOICE CALL: END: 000000\r\n", 2).startswith(
        b'\r\n+CLCC: 1,0,6,0,0,"17",129\r\n')
    assert first.end_reason == "police_hangup"
    assert at.command("AT+CLCC") == b'\r\n+CLCC: 2,0,0,0,0,"17",129\r\n\r\nOK\r\n'


def test_unknown_second_call_mode_is_refused(net, handset):
    m, at = handset
    with pytest.raises(UnknownFault):
        m.inject("second_call", mode="drop")
    assert m.faults.second_call == "refuse"


# -- police behaviours -------------------------------------------------------------------

def test_police_answer_then_hang_up_after_n_seconds(net, handset):
    police = net.add_police("17")
    police.behave("answer", answer_after_s=0.05, hangup_after_s=0.3)
    m, at = handset
    at.command("ATD17;")
    got = at.expect(b"VOICE CALL: END: 000000\r\n", 3)
    assert b"VOICE CALL: BEGIN" in got
    [call] = police.calls
    assert call.end_reason == "police_hangup" and 0.3 <= call.duration_s < 1.0


def test_police_answer_and_never_hang_up(net, handset):
    police = net.add_police("17", hangup_after_s=0.1)
    police.behave("answer", answer_after_s=0.05)  # hangup_after_s back to None: never
    m, at = handset
    at.command("ATD17;")
    _answered(at)
    assert b"END" not in at.read_for(0.5)
    assert at.command("AT+CLCC") == b'\r\n+CLCC: 1,0,0,0,0,"17",129\r\n\r\nOK\r\n'
    assert police.calls[0].ended_at is None


def test_police_never_answer(net, handset):
    police = net.add_police("17", answer_after_s=0.05)
    police.behave("never_answer")
    m, at = handset
    at.command("ATD17;")
    got = at.expect(b"\r\nNO ANSWER\r\n", 3)
    assert b'+CLCC: 1,0,3,' in got and b"BEGIN" not in got
    assert police.calls[0].end_reason == "no_answer"


def test_police_busy_never_rings(net, handset):
    police = net.add_police("17", answer_after_s=0.05)
    police.behave("busy")
    m, at = handset
    at.command("ATD17;")
    got = at.expect(b"\r\nBUSY\r\n", 3)
    assert got == (b'\r\n+CLCC: 1,0,2,0,0,"17",129\r\n'
                   b'\r\n+CLCC: 1,0,6,0,0,"17",129\r\n\r\nBUSY\r\n'), got
    assert police.calls[0].end_reason == "busy" and police.calls[0].alerting_at is None
    assert net.events_of("call_failed", modem=HANDSET, reason="busy")


def test_police_reject_after_ringing(net, handset):
    police = net.add_police("17", answer_after_s=0.05)
    police.behave("reject", reject_after_s=0.2)
    m, at = handset
    t0 = time.monotonic()
    at.command("ATD17;")
    got = at.expect(b"\r\nBUSY\r\n", 3)
    assert got.endswith(b'\r\n+CLCC: 1,0,3,0,0,"17",129\r\n'
                        b'\r\n+CLCC: 1,0,6,0,0,"17",129\r\n\r\nBUSY\r\n'), got
    call = police.calls[0]
    assert call.end_reason == "rejected" and call.answered_at is None
    assert call.ended_at - call.alerting_at >= 0.2 and time.monotonic() - t0 < 2
    # back to answering: the next call goes through
    police.behave("answer", answer_after_s=0.05)
    at.command("ATD17;")
    assert _answered(at)


@pytest.mark.parametrize("args,kwargs", [
    (("hang_up",), {}),
    (("answer",), {"answer_after_s": None}),
    (("answer",), {"hangup_after_s": -1}),
    (("reject",), {"reject_after_s": "soon"}),
    (("reject",), {"reject_after_s": None}),
])
def test_bad_police_behaviour_is_refused_and_changes_nothing(net, args, kwargs):
    police = net.add_police("17", answer_after_s=1.0, hangup_after_s=2.0)
    with pytest.raises(ValueError):
        police.behave(*args, **kwargs)
    assert (police.behaviour, police.answer_after_s, police.hangup_after_s) == ("answer", 1.0, 2.0)
