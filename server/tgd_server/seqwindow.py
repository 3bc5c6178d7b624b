"""The per-device replay window of protocol.md, as a pure function.

State: `high`, the highest seq accepted (0 before the first), and `bitmap`, an
unsigned 64-bit map where bit k says that seq `high - k` was seen (bit 0 is
`high` itself). A seq already seen is a replay; one 64 or more below `high` is
out of window.
"""

from __future__ import annotations

from typing import NamedTuple

WINDOW = 64
_MASK = (1 << WINDOW) - 1


class SeqRefused(Exception):
    """The seq cannot be accepted; `code` is `replay` or `out_of_window`."""

    def __init__(self, code: str, seq: int, high: int) -> None:
        super().__init__(f"{code}: seq {seq}, highest seen {high}")
        self.code = code
        self.seq = seq
        self.high = high


class SeqState(NamedTuple):
    high: int
    bitmap: int


def advance(state: SeqState, seq: int) -> SeqState:
    """The state after accepting `seq`, or SeqRefused."""
    high, bitmap = state
    if seq > high:
        shift = seq - high
        bitmap = ((bitmap << shift) | 1) & _MASK if shift < WINDOW else 1
        return SeqState(seq, bitmap)
    distance = high - seq
    if distance >= WINDOW:
        raise SeqRefused("out_of_window", seq, high)
    if bitmap >> distance & 1:
        raise SeqRefused("replay", seq, high)
    return SeqState(high, bitmap | 1 << distance)


def to_signed(bitmap: int) -> int:
    """u64 -> i64 for a BIGINT column."""
    return bitmap - (1 << 64) if bitmap >= 1 << 63 else bitmap


def from_signed(value: int) -> int:
    return value & _MASK
