# The heap probe inside the firmware's process (host only: frozen into the
# ESP32-faithful VM by firmware/host/manifest.py, never on a handset). tools/heap_probe.py
# drives it and reads what it writes; docs/benchmarks.md "Firmware: memory and size".
#
# main.py starts it on a PC when TGD_HEAP_PROBE names a folder: a task in the app's
# event loop that collects the garbage every PERIOD_MS and reads the live heap
# (gc.mem_alloc()). At each new peak (by STEP bytes or more) it writes to
# <folder>/heap-<tag>.txt the heap as it is: a copy of the GC's allocation table (which
# blocks are free, heads or tails of objects), each object's first four words, and the
# addresses of the types, classes and functions that name them. Once a second it
# writes the live heap and the peak. Its own cost (this object, its task, the table
# copy) is measured at the start and written too.
import binascii
import builtins
import gc
import io
import os
import select
import sys
import time

import asyncio
import uctypes

PERIOD_MS = 5
STEP = 256


def address(obj):
    a = id(obj)  # a small int drops the top bit of addresses from 2**30 up
    return a + (1 << 31) if a < 0 else a


class HeapProbe:
    def __init__(self, folder):
        gc.collect()
        before = gc.mem_alloc()
        self.total = gc.mem_alloc() + gc.mem_free()
        atb, atb_len, pool = _find_gc_area(self.total)
        self.atb = uctypes.bytearray_at(atb, atb_len)
        self.atb_copy = bytearray(atb_len)
        self.pool = pool
        self.words = uctypes.struct(pool, {"w": (uctypes.ARRAY | 0, uctypes.UINT32 | (self.total // 4))},
                                    uctypes.LITTLE_ENDIAN).w
        tag = "".join("%02x" % b for b in os.urandom(4))
        self.file = open(folder + "/heap-" + tag + ".txt", "w")
        self.peak = 0
        self.dumped = 0
        self.second = time.ticks_ms()
        gc.collect()
        self.own = gc.mem_alloc() - before
        self._write("probe total=%d pool=%x own=%d t=%d\n" % (self.total, pool, self.own,
                                                              time.ticks_ms()))

    def start(self):
        """A sampling task in the current event loop (main.py calls it before each run)."""
        asyncio.create_task(self._run())

    async def _run(self):
        while True:
            gc.collect()
            used = gc.mem_alloc()
            now = time.ticks_ms()
            if used > self.peak:
                self.peak = used
                if used >= self.dumped + STEP:
                    self.dumped = used
                    try:
                        self._dump(used, now)
                    except MemoryError:
                        self._write("dump_failed used=%d t=%d\n" % (used, now))
            if time.ticks_diff(now, self.second) >= 1000:
                self.second = now
                self._write("live used=%d peak=%d t=%d\n" % (used, self.peak, now))
            await asyncio.sleep_ms(PERIOD_MS)

    def _write(self, text):
        self.file.write(text)
        self.file.flush()

    def _dump(self, used, now):
        # The table first: what is allocated now. What the dump itself allocates lands in
        # blocks that are free in this copy, and nothing else runs until it is written.
        self.atb_copy[:] = self.atb
        w = self.file.write
        w("dump used=%d t=%d\natb %s\n" % (used, now, _hex(self.atb_copy)))
        words = self.words
        table = self.atb_copy
        blocks = len(table) * 4
        b = 0
        while b < blocks:
            if (table[b >> 2] >> ((b & 3) * 2)) & 3 in (1, 3):  # a head (or marked head)
                n = 1
                while b + n < blocks and (table[(b + n) >> 2] >> (((b + n) & 3) * 2)) & 3 == 2:
                    n += 1
                i = b * 4
                w("o %d %d %x %x %x %x\n" % (b, n, words[i], words[i + 1], words[i + 2], words[i + 3]))
                b += n
            else:
                b += 1
        _names(w, self.pool, self.pool + self.total)
        w("end\n")
        self.file.flush()


def _hex(buf):
    return binascii.hexlify(buf).decode()


def _find_gc_area(total):
    """The GC's area (allocation table, pool) in the VM's state, next to sys.modules.

    mp_state_ctx holds the VM state (sys.modules in it) then the memory state, whose
    area starts: table start, table length (total / 64), finaliser table, [weakref
    table], pool start, pool end (pool end - pool start == total)."""
    base = address(sys.modules)
    n = 1024
    w = uctypes.struct(base, {"w": (uctypes.ARRAY | 0, uctypes.UINT32 | n)}, uctypes.LITTLE_ENDIAN).w
    for i in range(4, n - 1):
        if w[i + 1] - w[i] == total and w[i] & 15 == 0:
            for j in (i - 2, i - 3):
                if w[j] == total // 64:
                    return w[j - 1], w[j], w[i]
    raise OSError("heap probe: GC area not found")


def _names(write, low, high):
    """Write "n <address> <kind> <name>" for what can name a heap object: the built-in
    types, and the modules, classes and functions that sit in the heap (low..high)."""

    def gen():
        yield

    class _C:
        def m(self):
            pass

    def outer(x):
        return lambda: x

    for t, name in ((type(gen), "generator_function"), (type(gen()), "coroutine_frame"),
                    (type(outer), "function"), (type(outer(1)), "closure"),
                    (type(_C().m), "bound_method"), (type(sys), "module"),
                    (type(select.poll()), "select.poll"), (type(sys.stdout), "io.stdout")):
        write("n %x type %s\n" % (address(t), name))
    for mname, mod in list(sys.modules.items()) + [("builtins", builtins), ("io", io)]:
        write("n %x module %s\n" % (address(mod), mname))
        for attr in dir(mod):
            try:
                v = getattr(mod, attr)
            except Exception:  # noqa: BLE001
                continue
            a = address(v)
            if isinstance(v, type):
                write("n %x type %s.%s\n" % (a, mname, attr))
                if not low <= a < high:
                    continue  # a built-in type: its methods are not in the heap
                for cattr in dir(v):
                    try:
                        f = getattr(v, cattr)
                    except Exception:  # noqa: BLE001
                        continue
                    fa = address(f)
                    if low <= fa < high and callable(f) and not isinstance(f, type):
                        write("n %x func %s.%s.%s\n" % (fa, mname, attr, cattr))
            elif low <= a < high and callable(v):
                write("n %x func %s.%s\n" % (a, mname, attr))
