# The journal's boot-time and seldom paths (journal.py): replaying the file at boot,
# checking each record, and compacting a full file. journal.py imports this module
# for the call and drops it from sys.modules, so its code is in the heap only while
# it runs (docs/firmware.md "Memory").
import binascii
import json

from journal import SEQ_BLOCK, State, encode_record


def decode_line(line):
    """The record in one line (str, without or with its newline), or None if corrupt."""
    if line.endswith("\n"):
        line = line[:-1]
    if len(line) < 11 or line[8] != " ":
        return None
    body = line[9:]
    try:
        crc = int(line[:8], 16)
    except ValueError:
        return None
    if binascii.crc32(body.encode()) & 0xFFFFFFFF != crc:
        return None
    try:
        rec = json.loads(body)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) and "r" in rec else None


def open_journal(j):
    """Journal.open: replay the file into a fresh State and return it."""
    import os
    try:
        os.remove(j._tmp)  # an interrupted compaction: the old file is intact
    except OSError:
        pass
    st = j.state = State()
    j._size = 0
    j._needs_newline = False
    try:
        f = open(j._path, "rb")
    except OSError:
        f = None
    if f is not None:
        try:
            while True:
                raw = f.readline()
                if not raw:
                    break
                j._size += len(raw)
                if not raw.endswith(b"\n"):
                    # torn last write: start the next record afresh. Only its newline may
                    # be missing: then the CRC still proves the record whole.
                    j._needs_newline = True
                try:
                    line = raw.decode()
                except UnicodeError:
                    line = ""
                rec = decode_line(line)
                if rec is None:
                    st.corrupt += 1
                else:
                    st.apply(rec)  # an "end" also sets st.end_t: the call-back window
        finally:
            f.close()
    # Numbers below seq_end may have been used. A skipped record may have been a
    # reservation: then skip one more block, never reuse a number.
    j._next_seq = st.seq_end + (SEQ_BLOCK if st.corrupt else 0)
    if st.corrupt:
        j._log.event("ERROR", where="journal", what="skipped_%d_corrupt_records" % st.corrupt)
    return st


def compact(j):
    """Journal.compact: rewrite the file with only what still matters (atomic rename):
    the sequence end, the last alarm's end and its time, the open alarm."""
    import os
    st = j.state
    lines = [encode_record({"r": "seq", "end": max(st.seq_end, j._next_seq)})]
    if st.last_end is not None:  # the call-back window outlives compaction too
        end = {"r": "end", "aid": st.last_end[0], "why": st.last_end[1]}
        if st.end_t is not None:
            end["t"] = st.end_t
        lines.append(encode_record(end))
    if st.alarm is not None:
        a = st.alarm
        lines.append(encode_record({"r": "open", "aid": a["aid"], "at": a["at"],
                                    "seq": a.get("seq")}))
        for k in a["p"]:
            lines.append(encode_record({"r": "p", "aid": a["aid"], "k": k, "v": a["p"][k]}))
    with open(j._tmp, "wb") as f:
        for line in lines:
            f.write(line.encode())
    os.rename(j._tmp, j._path)
    j._size = sum(len(x) for x in lines)
    j._needs_newline = False
