# Append-only flash journal: the alarm and its progress survive any reset.
#
# One record per line: "<crc32 as 8 hex> <compact JSON>\n". A record whose CRC
# does not match, or a torn last line, is skipped (and logged): the lines around
# it still count. Records:
#   {"r":"seq","end":N}              sequence numbers below N may have been used
#   {"r":"open","aid":A,"at":T}      an alarm was triggered (written before anything else)
#   {"r":"p","aid":A,"k":K,"v":V}    progress of alarm A (call, sms, mr, acked, help, calls)
#   {"r":"end","aid":A,"why":W,"t":T} alarm A finished (closed / timeout), at T (Unix s)
#                                    when the clock knew it (police call-back window)
# The file is rewritten (compacted) through a temporary file and an atomic rename
# when it outgrows `max_bytes`.
import binascii
import json
import os

from micropython import const

FILE = "journal.log"
TMP = "journal.tmp"
SEQ_BLOCK = const(100)
SEQ_MAX = const(0x7FFFFFFF)


class JournalError(Exception):
    pass


def encode_record(rec):
    body = json.dumps(rec)
    if "\n" in body:
        raise JournalError("record would span lines")
    return "%08x %s\n" % (binascii.crc32(body.encode()) & 0xFFFFFFFF, body)


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


class State:
    """What the journal says: reserved sequence end and the open alarm, if any."""

    def __init__(self):
        self.seq_end = 1
        self.alarm = None      # {"aid", "at", "p": {progress}} while open
        self.last_end = None   # (aid, why) of the last finished alarm
        self.end_t = None      # when it finished (Unix s), None if the clock did not know
        self.corrupt = 0       # records skipped
        self.records = 0

    def apply(self, rec):
        kind = rec.get("r")
        self.records += 1
        if kind == "seq":
            end = rec.get("end")
            if isinstance(end, int) and end > self.seq_end:
                self.seq_end = end
        elif kind == "open":
            self.alarm = {"aid": rec.get("aid"), "at": rec.get("at"), "seq": rec.get("seq"),
                          "p": {}}
        elif kind == "p":
            if self.alarm is not None and self.alarm["aid"] == rec.get("aid"):
                self.alarm["p"][rec.get("k")] = rec.get("v")
        elif kind == "end":
            if self.alarm is not None and self.alarm["aid"] == rec.get("aid"):
                self.alarm = None
            self.last_end = (rec.get("aid"), rec.get("why"))
            self.end_t = rec.get("t")  # when (Unix s), None if the clock did not know


class Journal:
    def __init__(self, root, log, max_bytes=4096):
        self._path = root + "/" + FILE
        self._tmp = root + "/" + TMP
        self._log = log
        self._max = max_bytes
        self.state = State()
        self._next_seq = 1
        self._size = 0
        self._needs_newline = False

    # -- reading (at boot) and compacting (when the file is full) -------------------
    def open(self):
        """Replay the file: the State (reserved sequence end, the open alarm if any)."""
        try:
            os.remove(self._tmp)  # an interrupted compaction: the old file is intact
        except OSError:
            pass
        st = self.state = State()
        self._size = 0
        self._needs_newline = False
        try:
            f = open(self._path, "rb")
        except OSError:
            f = None
        if f is not None:
            try:
                while True:
                    raw = f.readline()
                    if not raw:
                        break
                    self._size += len(raw)
                    if not raw.endswith(b"\n"):
                        # torn last write: start the next record afresh. Only its newline may
                        # be missing: then the CRC still proves the record whole.
                        self._needs_newline = True
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
        self._next_seq = st.seq_end + (SEQ_BLOCK if st.corrupt else 0)
        if st.corrupt:
            self._log.event("ERROR", where="journal", what="skipped_%d_corrupt_records" % st.corrupt)
        return st

    def compact(self):
        """Rewrite the file with only what still matters (atomic rename): the sequence
        end, the last alarm's end and its time, the open alarm."""
        st = self.state
        lines = [encode_record({"r": "seq", "end": max(st.seq_end, self._next_seq)})]
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
        with open(self._tmp, "wb") as f:
            for line in lines:
                f.write(line.encode())
        os.rename(self._tmp, self._path)
        self._size = sum(len(x) for x in lines)
        self._needs_newline = False

    # -- writing ------------------------------------------------------------------
    def append(self, rec):
        """Write one record. A flash failure is logged, never raised: the alarm goes on."""
        line = encode_record(rec)
        if self._needs_newline:
            line = "\n" + line
        self.state.apply(rec)
        try:
            with open(self._path, "ab") as f:
                f.write(line.encode())
            self._needs_newline = False
            self._size += len(line)
            if self._size > self._max:
                self.compact()
        except Exception as e:  # noqa: BLE001 - flash full, out of memory: the alarm goes on
            self._needs_newline = True
            self._log.error("journal", e)

    # -- sequence numbers ---------------------------------------------------------
    def next_seq(self):
        """A sequence number never used before, even across power cuts."""
        seq = self._next_seq
        if seq > SEQ_MAX - SEQ_BLOCK:
            raise JournalError("sequence numbers exhausted")
        if seq >= self.state.seq_end:
            self.append({"r": "seq", "end": seq + SEQ_BLOCK})
        self._next_seq = seq + 1
        return seq

    def jump_seq(self, floor):
        """The server has seen `floor`: continue above it (409 answer)."""
        if isinstance(floor, int) and floor + 1 > self._next_seq:
            self._next_seq = floor + 1

    # -- alarm --------------------------------------------------------------------
    def open_alarm(self, aid, at, seq=None):
        self.append({"r": "open", "aid": aid, "at": at, "seq": seq})

    def progress(self, aid, key, value):
        a = self.state.alarm
        if a is not None and a["aid"] == aid and a["p"].get(key) == value:
            return  # already recorded: spare the flash
        self.append({"r": "p", "aid": aid, "k": key, "v": value})

    def end_alarm(self, aid, why, t=None):
        rec = {"r": "end", "aid": aid, "why": why}
        if t is not None:
            rec["t"] = t  # Unix s: the police call-back window after a reboot
        self.append(rec)
