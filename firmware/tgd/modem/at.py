# AT command engine for the SIM7600 over one asyncio stream (docs/interfaces.md §3).
#
# One reader task owns the UART: it frames lines (CR LF; partial lines across reads;
# garbage bytes and non-UTF-8 lines are logged and skipped), recognises the SMS/MQTT
# prompt ("> " or ">" without a line end) and the HTTP "DOWNLOAD" prompt, reads the
# raw payloads announced by "+HTTPREAD: DATA,<n>" and "+CMQTTRXTOPIC/PAYLOAD: <i>,<n>",
# and routes every line:
#   1. "RDY": the modem (re)started: the pending command and every waiter get
#      ModemRebooted, then `on_reboot` is called;
#   2. the pending command's echo, prompt, final result code or `expect` line;
#   3. a known URC prefix: to the URC handlers (and also to the pending command when
#      it is that command's own answer, e.g. "+CLCC:" to AT+CLCC);
#   4. anything else: to the pending command, or logged as an unknown URC.
# `send()` holds a lock: one command in flight. Retrying is the caller's business.
import asyncio
import time

from micropython import const

from tgd.modem.errors import AtError, AtTimeout, CmeError, CmsError, ModemRebooted

DEFAULT_TIMEOUT_MS = const(5000)
_LINE_MAX = const(512)  # longer lines are garbage: dropped up to the next LF
_RAW_MAX = const(4096)  # an HTTP answer body is kept up to this size
# Raw blocks up to this size are received into one buffer made at start (a bigger one gets
# its own): during an alarm the heap is at its fullest and most broken up, and receiving
# a 600-byte answer then needed two 600-byte blocks at once (the buffer, then the bytes
# handed over); MemoryError where=at_rx lost a position in 3 of 12 runs of
# test_rig_ota_update.py::test_an_offer_during_an_alarm_is_deferred (VM, 48 KB). 640:
# an update's offer answer (436 to 600 bytes) and a download chunk (512) fit; 1024 held
# 384 bytes more for good, and a second alarm's 312-byte messages then found no block
# (CI, the replay second_alarm_module_holds under load).
_RAW_KEEP = const(640)
_READ_CHUNK = const(128)
_EOF_PAUSE_MS = const(20)
_CTRL_Z = b"\x1a"
_ESC = b"\x1b"
_QUIET_MS = const(300)  # after a timeout: the line must be this quiet before the next command
_QUIET_MAX_MS = const(2000)
# A command cancelled after it was written (an alarm cancels the heartbeat's task, an
# alarm's end its channels' tasks) still gets its final result code from the modem,
# which answers one command after the other: that OK must not end the next command
# (with echo off nothing else tells them apart). The next command waits for it, at most
# this long, before it is written; a final code that never comes (lost to a MemoryError
# in the reader, campaign seed 52) then costs the next command, the alarm's dial
# included, this much and no more. The modem gives a final code within a few ms.
_ORPHAN_MS = const(200)

# Lines that can arrive at any time (sim7600-at.md "Framing"), plus the answers that
# come after the OK of their command (+HTTPACTION, +CMQTT..., +NETOPEN).
URC_PREFIXES = (
    "RING", "+CLIP:", "+CMTI:", "+CDS:", "VOICE CALL:", "+CLCC:", "NO CARRIER", "BUSY",
    "NO ANSWER", "+CMQTT", "+HTTP_PEER_CLOSED", "+HTTP_NONET_EVENT", "+HTTPACTION:",
    "+CPIN:", "SMS DONE", "PB DONE", "+CGPS:", "+CREG:", "+CGREG:", "+CEREG:",
    "+NETOPEN:", "+CTZV:", "+CGEV:",
)
# Final result codes that end a dial (ATD/ATA) but are URCs at any other time.
_CALL_FINALS = ("NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE")
# A line that announces <n> raw bytes right after it: the HTTP answer body goes to the
# pending command; an incoming MQTT message's topic and payload (which may hold line
# breaks) go to the URC handlers of their announcing line, as bytes.
_RAW_PREFIX = "+HTTPREAD: DATA,"
_RAW_URCS = ("+CMQTTRXTOPIC:", "+CMQTTRXPAYLOAD:")


class _Pending:
    # The one command in flight and what it has received so far.
    def __init__(self, cmd, expect, wants_prompt):
        self.cmd = cmd
        self.expect = expect
        self.wants_prompt = wants_prompt
        self.prompted = False
        self.ok_seen = False
        self.expect_seen = expect is None
        self.is_dial = cmd.startswith("ATD") or cmd == "ATA"
        # "AT+CLCC" -> "+CLCC:"; "AT+CGPS?" -> "+CGPS:"; "ATD17;" -> None.
        self.response_prefix = None
        if cmd.startswith("AT+"):
            end = 3
            while end < len(cmd) and cmd[end] not in "=?":
                end += 1
            self.response_prefix = cmd[2:end] + ":"
        self.lines = []
        self.error = None
        self.done = False
        self.event = asyncio.Event()
        self.into = None  # send(into=): the caller's buffer for the raw block

    def finish(self, error=None):
        self.error = error
        self.done = True
        self.event.set()


def _after(ms, callback):
    # A task that calls `callback()` after `ms` unless cancelled first: the time-out of
    # the engine's own waits. Lighter than asyncio.wait_for_ms, which keeps a runner
    # task, a second task and their frames alive for every wait (heap, docs/firmware.md
    # "Memory").
    return asyncio.create_task(_ring(ms, callback))


async def _ring(ms, callback):
    await asyncio.sleep_ms(ms)
    callback()


class UrcWaiter:
    """Waits for the next URC that starts with `prefix` (register it BEFORE the command)."""

    def __init__(self, engine, prefix):
        self._engine = engine
        self.prefix = prefix
        self.line = None
        self.error = None
        self.event = asyncio.Event()

    async def wait(self, timeout_ms):
        timer = _after(timeout_ms, self._expire)
        try:
            await self.event.wait()
        finally:
            timer.cancel()
            self.cancel()
        if self.error is not None:
            raise self.error
        return self.line

    def _expire(self):
        if self.line is None and self.error is None:
            self.error = AtTimeout(self.prefix, [])
            self.event.set()

    def cancel(self):
        waiters = self._engine._waiters
        if self in waiters:
            waiters.remove(self)


class AtEngine:
    _owner = None  # the engine whose reader runs (one UART, one reader)
    prompt_ms = 5000  # the longest wait for a "> " / DOWNLOAD prompt (tests shorten it)

    def __init__(self, stream, log):
        self._stream = stream
        self._log = log
        self._lock = asyncio.Lock()
        self._pending = None
        self._handlers = []  # (prefix, callback(line))
        self._waiters = []
        self._line = bytearray(_LINE_MAX)
        self._line_view = memoryview(self._line)
        self._len = 0
        self._overflow = False
        self._raw = None
        self.raw_buffer = bytearray(_RAW_KEEP)  # send(into=raw_buffer): read in place
        self._raw_len = 0
        self._raw_left = 0
        self._raw_urc = None  # the URC line that announced the raw block, if a URC did
        self._task = None
        self._orphan = None  # (command cancelled before its final result code, its Event)
        self._timed_out = None  # ticks of the last timeout: a late answer may still come
        self.on_reboot = None  # callback() when "RDY" arrives
        self.on_silent = None  # callback(n) at the n-th command time-out in a row
        self.silent_count = 0  # commands in a row that got no final result code
        self.last_rx_ms = None  # ticks of the last byte received (None: nothing yet)
        self.wake = None  # async callable awaited before each command (the driver's DTR)

    # ---- life cycle -------------------------------------------------------------

    def start(self):
        """Start the reader task (idempotent). Needs a running event loop.

        One reader owns the UART: an engine still reading from an earlier start of the
        app (not deinit'ed) is stopped, otherwise the two would split the bytes.
        """
        if self._task is None:
            previous = AtEngine._owner
            if previous is not None and previous is not self and previous._task is not None:
                self._log.error("at_engine", "previous_reader_stopped")
                previous.deinit()
            AtEngine._owner = self
            self._task = asyncio.create_task(self._reader())

    def deinit(self):
        if AtEngine._owner is self:
            AtEngine._owner = None
        if self._task is not None:
            self._task.cancel()
            self._task = None
        p = self._pending
        if p is not None and not p.done:
            p.finish(AtTimeout(p.cmd, p.lines))

    # ---- URC routing ------------------------------------------------------------

    def on_urc(self, prefix, callback):
        """Call `callback(line)` for every line that starts with `prefix`.

        `prefix` should be one of URC_PREFIXES (or a longer form of one); another
        prefix is added to the URC set for this engine.
        """
        self._handlers.append((prefix, callback))

    def busy(self):
        """A command is in flight, or a URC is awaited (a UrcWaiter)."""
        return self._lock.locked() or bool(self._waiters)

    def urc_waiter(self, prefix):
        w = UrcWaiter(self, prefix)
        self._waiters.append(w)
        return w

    def _urc(self, line):
        # True when the line is a URC; its handlers and waiters have it then.
        hit = False
        for prefix in URC_PREFIXES:
            if line.startswith(prefix):
                hit = True
                break
        for prefix, callback in self._handlers:
            if line.startswith(prefix):
                hit = True
                try:
                    callback(line)
                except Exception as e:  # noqa: BLE001 - a handler bug must not kill the reader
                    self._log.error("urc_handler", e)
        for w in self._waiters:
            if line.startswith(w.prefix):
                hit = True
                if w.line is None and w.error is None:
                    w.line = line
                    w.event.set()
        return hit

    # ---- commands ---------------------------------------------------------------

    async def _wait_quiet(self):
        # The late answer of a timed-out command must not end the next one: wait until
        # nothing has come for _QUIET_MS (it is dropped as stale, nothing being pending).
        since = self._timed_out
        self._timed_out = None
        waited = 0
        while waited < _QUIET_MAX_MS:
            last = self.last_rx_ms
            if last is not None and time.ticks_diff(last, since) > 0:
                since = last
            if time.ticks_diff(time.ticks_ms(), since) >= _QUIET_MS:
                return
            await asyncio.sleep_ms(50)
            waited += 50

    async def send(self, cmd, expect=None, timeout_ms=DEFAULT_TIMEOUT_MS, payload=None,
                   into=None):
        """Send `cmd` ("AT+CSQ"), return its answer lines (str; raw blocks as bytes).

        - ends at OK (returned) or ERROR / +CME ERROR / +CMS ERROR (raised; for ATD/ATA
          also NO CARRIER / BUSY / NO ANSWER, raised as AtError);
        - `expect`: a line prefix that must ALSO arrive (before or after the OK), e.g.
          "+HTTPREAD: 0";
        - `payload` (bytes): sent after the prompt ("> " / ">" / "DOWNLOAD"); an SMS
          payload must end with Ctrl-Z (see sms_payload);
        - `into` (bytearray): the answer's raw block is received into it, and the lines
          hold its length (an int) instead of bytes: nothing is allocated for it (an
          update's download, chunk after chunk, right after an alarm);
        - raises AtTimeout(partial_lines) after `timeout_ms` in all, ModemRebooted
          if "RDY" arrives meanwhile.
        """
        self.start()
        # acquire/release rather than `async with`: one coroutine frame less for every
        # command queued behind the one in flight
        await self._lock.acquire()
        try:
            if self._orphan is not None:
                await self._settle_orphan()
            if self.wake is not None:
                await self.wake()
            if self._timed_out is not None:
                await self._wait_quiet()  # a late answer must not end the next command
            p = _Pending(cmd, expect, payload is not None)
            p.into = into
            self._pending = p
            deadline = time.ticks_add(time.ticks_ms(), timeout_ms)
            payload_sent = False
            written = False
            try:
                self._log.debug("AT_TX", cmd=cmd)
                await self._write(p, cmd.encode() + b"\r")
                written = True
                if payload is not None:
                    # The prompt comes at once (sim7600-at.md): a modem that gives none
                    # within prompt_ms is silent, and counts so now, not at the end of
                    # the command's whole timeout (an SMS's 60 s would hold back the
                    # power cycle of a hung modem, and the alarm's dial behind it).
                    prompt_by = time.ticks_add(time.ticks_ms(), self.prompt_ms)
                    if time.ticks_diff(prompt_by, deadline) > 0:
                        prompt_by = deadline
                    await self._wait(p, prompt_by, True)
                    if p.error is not None:
                        raise p.error
                    if not p.done:
                        p.event.clear()
                        payload_sent = True
                        await self._write(p, payload)
                await self._wait(p, deadline, False)
                if p.error is not None:
                    raise p.error
                return p.lines
            except asyncio.CancelledError:
                if written and not p.done:
                    self._orphan = (p.cmd, asyncio.Event())
                raise
            finally:
                self._pending = None
                if p.prompted and not payload_sent:
                    # Cancelled between the prompt and the payload: leave text mode.
                    self._write_now(_ESC)
        finally:
            self._lock.release()

    async def _write(self, p, data):
        # A UART that refuses the bytes is, for the caller, a modem that does not answer.
        try:
            self._stream.write(data)
            await self._stream.drain()
        except OSError as e:
            self._log.error("at_tx", e)
            self._silent()
            raise AtTimeout(p.cmd, p.lines)

    def _write_now(self, data):
        # Best effort, from cleanup paths: an error here must not hide the first one.
        try:
            self._stream.write(data)
        except OSError:
            pass

    async def _wait(self, p, deadline, for_prompt):
        if not p.event.is_set():
            remaining = time.ticks_diff(deadline, time.ticks_ms())
            if remaining > 0:
                timer = _after(remaining, p.event.set)
                try:
                    await p.event.wait()
                finally:
                    timer.cancel()
            if not p.done and not (for_prompt and p.prompted):
                if for_prompt:
                    # A prompt that comes late would swallow the next commands as text.
                    self._write_now(_ESC)
                self._timed_out = time.ticks_ms()
                self._silent()
                raise AtTimeout(p.cmd, p.lines)
        self.silent_count = 0  # it answered

    def _silent(self):
        self.silent_count += 1
        if self.on_silent is not None:
            try:
                self.on_silent(self.silent_count)
            except Exception as e:  # noqa: BLE001 - the command's own error comes first
                self._log.error("silent_handler", e)

    # ---- reader -----------------------------------------------------------------

    async def _reader(self):
        stream = self._stream
        eof_logged = False
        while True:
            try:
                data = await stream.read(_READ_CHUNK)
                if not data:
                    if not eof_logged:
                        self._log.error("at_rx", "eof")
                        eof_logged = True
                    await asyncio.sleep_ms(_EOF_PAUSE_MS)
                    continue
                eof_logged = False
                self.last_rx_ms = time.ticks_ms()
                self.feed(data)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the reader must outlive any surprise
                self._log.error("at_rx", e)
                await asyncio.sleep_ms(_EOF_PAUSE_MS)

    def feed(self, data):
        """Frame received bytes (called by the reader; public for tests and replays)."""
        i = 0
        n = len(data)
        mv = memoryview(data)
        while i < n:
            if self._raw_left > 0:
                take = min(self._raw_left, n - i)
                keep = min(take, len(self._raw) - self._raw_len)
                if keep > 0:
                    self._raw[self._raw_len:self._raw_len + keep] = mv[i:i + keep]
                    self._raw_len += keep
                self._raw_left -= take
                i += take
                if self._raw_left == 0:
                    self._raw_done()
                continue
            j = data.find(b"\n", i)
            end = n if j < 0 else j
            self._append(mv, i, end)
            if j < 0:
                break
            i = j + 1
            self._line_done()
        self._check_prompt()

    def _append(self, mv, start, end):
        k = end - start
        if k <= 0:
            return
        if self._overflow or self._len + k > _LINE_MAX:
            if not self._overflow:
                self._log.error("at_rx", "line_too_long")
            self._overflow = True
            self._len = 0
            return
        self._line[self._len:self._len + k] = mv[start:end]
        self._len += k

    def _line_done(self):
        buf = self._line
        start = 0
        end = self._len
        self._len = 0
        if self._overflow:
            self._overflow = False
            return
        # Noise at wake-up or from a glitch comes before the text: drop it.
        while start < end and (buf[start] < 0x20 or buf[start] > 0x7E):
            start += 1
        while end > start and buf[end - 1] <= 0x20:
            end -= 1
        if start > 0 and end > start:
            self._log.error("at_rx", "garbage_bytes:%d" % start)
        if end <= start:
            return
        try:
            line = str(self._line_view[start:end], "utf-8")  # one copy: the str
        except UnicodeError:
            self._log.error("at_rx", "not_utf8:%d_bytes" % (end - start))
            return
        self._on_line(line)

    def _check_prompt(self):
        # "> " arrives without a line end: look at the unfinished line.
        p = self._pending
        if p is None or p.done or not p.wants_prompt or p.prompted or self._len == 0:
            return
        buf = self._line
        i = 0
        while i < self._len and buf[i] in (0x0D, 0x20):
            i += 1
        if i < self._len and buf[i] == 0x3E and self._len - i <= 2:  # ">" or "> "
            self._len = 0
            p.prompted = True
            p.event.set()

    def _raw_done(self):
        p = self._pending
        if p is not None and self._raw is p.into:
            self._raw = None  # received into the caller's buffer: its length, no copy
            if not p.done:
                p.lines.append(self._raw_len)
            return
        data = bytes(memoryview(self._raw)[:self._raw_len])
        self._raw = None
        urc = self._raw_urc
        if urc is not None:
            self._raw_urc = None
            for prefix, callback in self._handlers:
                if urc.startswith(prefix):
                    try:
                        callback(data)
                    except Exception as e:  # noqa: BLE001 - a handler bug must not kill the reader
                        self._log.error("urc_handler", e)
            return
        p = self._pending
        if p is not None and not p.done:
            p.lines.append(data)
        else:
            self._log.error("at_rx", "raw_block_without_command:%d" % len(data))

    # ---- routing ----------------------------------------------------------------

    def _on_line(self, line):
        self._log.debug("AT_RX", line=line)
        p = self._pending
        if p is not None and p.done:
            p = None
        if line == "RDY":
            self._rebooted()
            return
        if self._orphan is not None and self._orphan_takes(line):
            return
        if line.startswith(_RAW_PREFIX):
            self._start_raw(line[len(_RAW_PREFIX):], None)
        elif line.startswith(_RAW_URCS[0]) or line.startswith(_RAW_URCS[1]):
            self._start_raw(line[line.rfind(",") + 1:], line)
        if p is not None and self._for_command(p, line):
            return
        if self._urc(line):
            if p is not None and p.response_prefix is not None and line.startswith(p.response_prefix):
                p.lines.append(line)
            return
        if p is not None:
            p.lines.append(line)
            return
        if line.startswith("AT") or line in ("OK", ">"):
            # A late echo or a late answer of a command that timed out.
            self._log.debug("AT_STALE", line=line)
            return
        self._log.debug("AT_URC_UNKNOWN", line=line)

    async def _settle_orphan(self):
        # Before the next command: the cancelled one's final code, _ORPHAN_MS at most.
        orphan = self._orphan
        timer = _after(_ORPHAN_MS, orphan[1].set)
        try:
            await orphan[1].wait()
        finally:
            timer.cancel()
            if self._orphan is orphan:
                self._orphan = None  # never came: the next command goes anyway

    def _orphan_takes(self, line):
        # True when `line` is the final result code of the command cancelled last (no
        # other command was written since: _settle_orphan holds it back).
        if line == "OK" or line == "ERROR" or line.startswith("+CME ERROR:") \
                or line.startswith("+CMS ERROR:"):
            cmd, done = self._orphan
            self._orphan = None
            done.set()
            self._log.debug("AT_LATE", cmd=cmd, line=line)
            return True
        return False

    def _rebooted(self):
        # "RDY": the pending command and every waiter get ModemRebooted (a waiter for
        # "RDY" itself gets the line), then on_reboot. Resident, not loaded per use: a
        # reboot comes when the heap is busiest (mid-alarm), and this line must never
        # be lost to a MemoryError while loading code.
        p = self._pending
        if p is not None and not p.done:
            p.finish(ModemRebooted(p.cmd))
        self._len = 0
        self._raw_left = 0
        self._raw = None
        self._raw_urc = None
        if self._orphan is not None:
            self._orphan[1].set()  # the modem restarted: nothing more will come for it
            self._orphan = None
        for w in self._waiters:
            if w.prefix == "RDY":
                if w.line is None:
                    w.line = "RDY"
                    w.event.set()
            elif w.line is None and w.error is None:
                w.error = ModemRebooted(w.prefix)
                w.event.set()
        if self.on_reboot is not None:
            try:
                self.on_reboot()
            except Exception as e:  # noqa: BLE001 - a handler bug must not kill the reader
                self._log.error("reboot_handler", e)

    def _for_command(self, p, line):
        # True when the line belongs to the pending command (and was consumed).
        if line == p.cmd:
            return True  # echo (ATE1)
        if p.wants_prompt and not p.prompted and line in (">", "DOWNLOAD"):
            p.prompted = True
            p.event.set()
            return True
        if line == "OK":
            p.ok_seen = True
            if p.expect_seen:
                p.finish()
            return True
        if line == "ERROR":
            p.finish(AtError(line))
            return True
        if line.startswith("+CME ERROR:"):
            p.finish(CmeError(line, _error_code(line)))
            return True
        if line.startswith("+CMS ERROR:"):
            p.finish(CmsError(line, _error_code(line)))
            return True
        if p.is_dial and line in _CALL_FINALS:
            p.finish(AtError(line))
            return True
        if p.expect is not None and not p.expect_seen and _matches_expect(line, p.expect):
            p.lines.append(line)
            p.expect_seen = True
            if p.ok_seen:
                p.finish()
            return True
        return False

    def _start_raw(self, count, urc):
        try:
            n = int(count.strip())
        except ValueError:
            self._log.error("at_rx", "bad_raw_length")
            return
        if n <= 0:
            return
        if n > _RAW_MAX:
            self._log.error("at_rx", "raw_block_truncated:%d" % n)
        p = self._pending
        if urc is None and p is not None and not p.done and p.into is not None \
                and n <= len(p.into):
            self._raw = p.into
        else:
            self._raw = self.raw_buffer if n <= _RAW_KEEP else bytearray(min(n, _RAW_MAX))
        self._raw_len = 0
        self._raw_left = n
        self._raw_urc = urc


def _matches_expect(line, expect):
    # "+HTTPREAD: 0" also matches "+HTTPREAD:0" (firmware versions differ on the space).
    if line.startswith(expect):
        return True
    return " " in expect and line.replace(" ", "") == expect.replace(" ", "")


def _error_code(line):
    v = line[line.find(":") + 1:].strip()
    return int(v) if v.isdigit() else v


def sms_payload(text):
    """The bytes that follow the SMS prompt: the text and Ctrl-Z."""
    return text.encode() + _CTRL_Z
