# heapsize: 96k
# The flash journal: torn and corrupt records at every offset, recovery, sequence
# numbers never reused, compaction.
import os

from tgd.journal import Journal, SEQ_BLOCK, FILE, TMP, encode_record
from tgd.journal import decode_line
from tgd.log import Log
from scratch import unique_dir

DIR = unique_dir("journal")
LINES = []


def _keep_last(line):
    if len(LINES) > 20:
        del LINES[0]
    LINES.append(line)


LOG = Log(sink=_keep_last)


def fresh():
    try:
        os.mkdir(DIR)
    except OSError:
        pass
    for name in (FILE, TMP):
        try:
            os.remove(DIR + "/" + name)
        except OSError:
            pass
    return DIR


def write_bytes(data):
    with open(DIR + "/" + FILE, "wb") as f:
        f.write(data)


def read_bytes():
    with open(DIR + "/" + FILE, "rb") as f:
        return f.read()


def reopen():
    j = Journal(DIR, LOG, max_bytes=100000)
    j.open()
    return j


def scenario():
    """A journal with a seq block, an alarm and its progress. Returns (bytes, seqs used)."""
    fresh()
    j = reopen()
    used = [j.next_seq() for _ in range(3)]
    j.open_alarm("3fa9c01b", 1795678199)
    j.progress("3fa9c01b", "call", "dialing")
    used.append(j.next_seq())
    j.progress("3fa9c01b", "sms", "sent")
    j.progress("3fa9c01b", "help", 1)
    return read_bytes(), used


def test_record_roundtrip_and_crc():
    line = encode_record({"r": "seq", "end": 101})
    assert decode_line(line) == {"r": "seq", "end": 101}
    assert decode_line(line.replace("101", "102")) is None
    assert decode_line("garbage") is None and decode_line("") is None


def test_sequence_numbers_survive_reboot_and_are_never_reused():
    fresh()
    j = reopen()
    first = [j.next_seq() for _ in range(5)]
    assert first == [1, 2, 3, 4, 5]
    j = reopen()  # reboot: the rest of the block is skipped
    assert j.next_seq() == 1 + SEQ_BLOCK
    used = set(first)
    for _ in range(250):
        s = j.next_seq()
        assert s not in used
        used.add(s)
    j = reopen()
    assert j.next_seq() > max(used)


def test_jump_past_server_floor():
    fresh()
    j = reopen()
    j.next_seq()
    j.jump_seq(5000)
    assert j.next_seq() == 5001
    j = reopen()
    assert j.next_seq() > 5001


def test_open_alarm_resumes_with_progress_and_end_closes_it():
    data, used = scenario()
    j = reopen()
    a = j.state.alarm
    assert a["aid"] == "3fa9c01b" and a["at"] == 1795678199
    assert a["p"] == {"call": "dialing", "sms": "sent", "help": 1}
    j.end_alarm("3fa9c01b", "closed")
    j = reopen()
    assert j.state.alarm is None and j.state.last_end == ("3fa9c01b", "closed")


def test_truncated_at_every_offset():
    data, used = scenario()
    full_lines = data.split(b"\n")
    for cut in range(len(data) + 1):
        fresh()
        write_bytes(data[:cut])
        j = reopen()
        st = j.state
        complete = data[:cut + 1].count(b"\n")  # a record lacking only its newline is whole
        assert st.records == complete, (cut, st.records, complete)
        # the alarm exists as soon as its record is complete
        open_line = 1 if data.split(b"\n")[0].find(b'"seq"') >= 0 else 0
        has_open = complete > open_line
        assert (st.alarm is not None) == has_open, cut
        # a number handed out after a durable reservation is never handed out again
        s = j.next_seq()
        if complete >= 1:
            assert s > max(used), (cut, s)
        # appending after a torn line keeps every complete record readable
        j.progress("3fa9c01b", "x", cut)
        j2 = reopen()
        assert j2.state.records == j.state.records, (cut, j2.state.records, j.state.records)
        torn = cut > 0 and data[cut - 1] != 0x0A and data[cut:cut + 1] != b"\n"
        assert j2.state.corrupt == (1 if torn else 0), cut
    assert len(full_lines) > 5


def test_corrupt_byte_at_every_offset_skips_only_that_record():
    data, used = scenario()
    n_records = data.count(b"\n")
    for pos in range(len(data)):
        fresh()
        bad = bytearray(data)
        bad[pos] = bad[pos] ^ 0x5A
        write_bytes(bytes(bad))
        LINES.clear()
        j = reopen()
        st = j.state
        if bad[pos] == 0x0A or data[pos] == 0x0A:
            # a newline made or destroyed: two records affected at most
            assert st.records >= n_records - 2, pos
        else:
            assert st.records == n_records - 1, (pos, st.records)
            assert st.corrupt == 1
            assert any("ERROR" in line and "journal" in line for line in LINES)
        # never reuse a sequence number, whatever was lost
        assert j.next_seq() > max(used), pos


def test_garbage_file_is_survived():
    fresh()
    write_bytes(b"\x00\xff" * 300 + b"\n\n\nnot a record\n")
    j = reopen()
    assert j.state.alarm is None
    j.open_alarm("00000001", None)
    assert reopen().state.alarm["aid"] == "00000001"


def test_compaction_keeps_state_and_bounds_the_file():
    fresh()
    j = Journal(DIR, LOG, max_bytes=600)
    j.open()
    j.open_alarm("cafe0001", 1)
    last = 0
    for i in range(200):
        last = j.next_seq()
        j.progress("cafe0001", "calls", i)
    size = len(read_bytes())
    assert size <= 600 + 100, size
    j2 = Journal(DIR, LOG, max_bytes=600)
    st = j2.open()
    assert st.alarm["aid"] == "cafe0001" and st.alarm["p"]["calls"] == 199
    assert j2.next_seq() > last


def test_interrupted_compaction_leaves_old_file():
    data, used = scenario()
    with open(DIR + "/" + TMP, "wb") as f:
        f.write(b"0000 partial")
    j = reopen()
    assert j.state.alarm["aid"] == "3fa9c01b"
    try:
        os.stat(DIR + "/" + TMP)
        raise AssertionError("stale tmp left")
    except OSError:
        pass


def test_progress_written_once():
    fresh()
    j = reopen()
    j.open_alarm("aa", 1)
    j.progress("aa", "call", "active")
    size = len(read_bytes())
    j.progress("aa", "call", "active")
    assert len(read_bytes()) == size
