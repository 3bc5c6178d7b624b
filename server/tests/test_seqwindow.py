import pytest

from tgd_server.seqwindow import SeqRefused, SeqState, advance, from_signed, to_signed

EMPTY = SeqState(0, 0)


def run(seqs, state=EMPTY):
    for seq in seqs:
        state = advance(state, seq)
    return state


def test_increasing_sequence_is_accepted():
    state = run([1, 2, 3, 10])
    assert state.high == 10
    assert state.bitmap & 1


@pytest.mark.parametrize("seqs, replay", [([5], 5), ([5, 6], 5), ([1, 3, 2], 3), ([1, 100, 50], 50)])
def test_seen_seq_is_a_replay(seqs, replay):
    state = run(seqs)
    with pytest.raises(SeqRefused) as refused:
        advance(state, replay)
    assert refused.value.code == "replay"
    assert refused.value.high == state.high


def test_late_but_unseen_seq_inside_the_window_is_accepted_once():
    state = run([1, 10])
    state = advance(state, 5)
    with pytest.raises(SeqRefused):
        advance(state, 5)


def test_window_edge():
    state = run([100])
    advance(state, 37)  # 63 below: inside
    with pytest.raises(SeqRefused) as refused:
        advance(state, 36)  # 64 below: out
    assert refused.value.code == "out_of_window"


def test_big_jump_clears_the_map():
    state = run([1, 2, 3, 1000])
    assert state.bitmap == 1
    with pytest.raises(SeqRefused):
        advance(state, 3)


@pytest.mark.parametrize("value", [0, 1, 2**63 - 1, 2**63, 2**64 - 1])
def test_signed_round_trip(value):
    signed = to_signed(value)
    assert -(2**63) <= signed < 2**63
    assert from_signed(signed) == value


def test_full_bitmap_round_trips_through_the_window():
    state = run(range(1, 65))
    assert state.bitmap == 2**64 - 1
    state = SeqState(state.high, from_signed(to_signed(state.bitmap)))
    for seq in range(1, 65):
        with pytest.raises(SeqRefused):
            advance(state, seq)
