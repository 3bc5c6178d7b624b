# A scripted modem on an asyncio-stream interface, for tests inside the MicroPython VM.
# The script is a list of steps (expected bytes written by the firmware, replies); a
# reply is a list whose items are bytes (delivered as one read, so byte-boundary splits
# are exact) or ints (a pause in ms). Anything written that the script did not expect
# is kept in `unexpected`, so a test can fail on it.
import asyncio


class ScriptedStream:
    def __init__(self, script=()):
        self.script = list(script)
        self.written = bytearray()
        self.unexpected = []
        self._commands = []
        self._out = bytearray()
        self._rx = []
        self._ev = asyncio.Event()
        self._tasks = []

    # ---- the stream interface used by AtEngine --------------------------------

    async def read(self, n):
        while not self._rx:
            self._ev.clear()
            await self._ev.wait()
        chunk = self._rx[0]
        if len(chunk) <= n:
            self._rx.pop(0)
            return chunk
        self._rx[0] = chunk[n:]
        return chunk[:n]

    def write(self, data):
        if data.startswith(b"AT") and data.endswith(b"\r"):
            self._commands.append(bytes(data[:-1]).decode())
        self.written.extend(data)
        self._out.extend(data)
        self._match()

    async def drain(self):
        await asyncio.sleep_ms(0)

    # ---- test side --------------------------------------------------------------

    def push(self, data):
        """Bytes from the modem, now (e.g. a URC)."""
        if data:
            self._rx.append(bytes(data))
            self._ev.set()

    def play(self, replies):
        """Deliver replies (bytes / pause ms) in the background."""
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.create_task(self._play(replies)))

    def add(self, expect, replies):
        self.script.append((expect, replies))
        self._match()

    def done(self):
        """True when every scripted step was consumed and nothing unexpected came."""
        return not self.script and not self.unexpected

    def forget(self):
        """Drop the record of what was written (long runs that measure the heap)."""
        self.written = bytearray()
        self._commands = []

    def commands(self):
        """Every command line written, in order (payloads excluded)."""
        return list(self._commands)

    async def _play(self, replies):
        for item in replies:
            if isinstance(item, int):
                await asyncio.sleep_ms(item)
            else:
                self.push(item)

    def _match(self):
        while True:
            if self.script:
                expect = self.script[0][0]
                if bytes(self._out[:len(expect)]) == expect:
                    self._out = self._out[len(expect):]
                    replies = self.script.pop(0)[1]
                    if replies:
                        self.play(replies)
                    continue
                if len(self._out) < len(expect) and expect.startswith(bytes(self._out)):
                    return  # the rest is still to come
            cr = self._out.find(b"\r")
            cz = self._out.find(b"\x1a")
            cut = cr if cr >= 0 else cz
            if cut < 0:
                return
            self.unexpected.append(bytes(self._out[:cut + 1]))
            self._out = self._out[cut + 1:]


def chunks(data, size):
    """`data` as a list of pieces of `size` bytes (the last may be shorter)."""
    return [data[i:i + size] for i in range(0, len(data), size)]


def line_log(lines):
    """The real firmware Log (debug level) writing into the list `lines`."""
    from tgd.log import Log

    return Log(level="debug", sink=lines.append)


def errors_in(lines):
    """The `what` of every ERROR line."""
    out = []
    for line in lines:
        parts = line.split(" ")
        if len(parts) >= 3 and parts[1] == "ERROR":
            for part in parts[2:]:
                if part.startswith("what="):
                    out.append(part[5:])
    return out


async def until(condition, timeout_ms=3000, what=""):
    """Wait until `condition()` is true (polled every 5 ms); AssertionError after timeout_ms.

    Tests wait for an outcome, never for a fixed time, so a slow machine cannot fail them.
    """
    waited = 0
    while not condition():
        if waited >= timeout_ms:
            raise AssertionError("not reached in %d ms: %s" % (timeout_ms, what))
        await asyncio.sleep_ms(5)
        waited += 5
