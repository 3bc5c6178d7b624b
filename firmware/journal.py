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
import sys

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


class State:
    """What the journal says: reserved sequence end and the open alarm, if any."""

    def __init__(self):
        self.seq_end = 1
        self.alarm = None      # {"aid", "at", "p": {progress}} while open
        self.last_end = None   # (aid, why) of the last finished alarm
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

    # -- reading and compacting (journal_rare.py: at boot, and when the file is full) --
    def open(self):
        """Replay the file: the State (reserved sequence end, the open alarm if any)."""
        import journal_rare  # boot only: that code leaves the heap after the call
        sys.modules.pop("journal_rare", None)
        return journal_rare.open_journal(self)

    def compact(self):
        """Rewrite the file with only what still matters; atomic through rename."""
        import journal_rare
        sys.modules.pop("journal_rare", None)
        journal_rare.compact(self)

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
            rec["t"] = t  # Unix s: the police call-back window after a reboot (app_boot)
        self.append(rec)
