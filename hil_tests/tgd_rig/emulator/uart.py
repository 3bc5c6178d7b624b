"""The modem's UART over a port: bytes paced at the line rate both ways, split writes,
and a host that stops reading.

A pty delivers everything at once; a real UART at 115200 baud moves 10 bits a byte.
`Uart` paces a pty to `timing.uart_bps` (a real serial port paces itself), writes in
random small chunks when the `split_writes` fault is on, waits while the host's
buffer is full and gives up only on a host that read nothing for HOST_STALL_S.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .ports import PtyPort, SerialPort

CHUNK = 64
HOST_STALL_S = 2.0  # a host that reads nothing this long is gone (killed firmware)
_MIN_SLEEP_S = 0.002


class Uart:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        port: PtyPort | SerialPort,
        bps: Callable[[], float | None],
        split: Callable[[], dict[str, Any] | None],
        rng: random.Random,
        receiver: Callable[[bytes], None],
        note: Callable[[str], None],
    ):
        self._loop = loop
        self._port = port
        self._bps = bps if isinstance(port, PtyPort) else (lambda: None)
        self._split = split
        self._rng = rng
        self._receiver = receiver
        self._note = note
        self._out: asyncio.Queue[bytes] = asyncio.Queue()
        self._tx_free_at = 0.0  # when everything queued so far has reached the host
        self._rx_free_at = 0.0  # when everything received so far has reached the modem
        self._rx_pending: deque[tuple[float, bytes]] = deque()
        self._writer = loop.create_task(self._write_loop())

    # -- host -> modem ----------------------------------------------------------
    def on_port_bytes(self, data: bytes) -> None:
        """Called by the port; hands the bytes on when the last one would have arrived."""
        bps = self._bps()
        if not bps:
            self._receiver(data)
            return
        now = time.monotonic()
        self._rx_free_at = max(now, self._rx_free_at) + len(data) * 10 / bps
        if not self._rx_pending and self._rx_free_at - now <= _MIN_SLEEP_S:
            self._receiver(data)
            return
        self._rx_pending.append((self._rx_free_at, data))
        if len(self._rx_pending) == 1:
            self._loop.call_later(self._rx_free_at - now, self._release_rx)

    def _release_rx(self) -> None:
        now = time.monotonic()
        while self._rx_pending and self._rx_pending[0][0] <= now + 0.001:
            self._receiver(self._rx_pending.popleft()[1])
        if self._rx_pending:
            self._loop.call_later(self._rx_pending[0][0] - now, self._release_rx)

    # -- modem -> host ----------------------------------------------------------
    def send(self, data: bytes) -> None:
        self._out.put_nowait(data)

    def drop_pending(self) -> list[bytes]:
        """Power cut: what was still queued never goes out (returned for the transcript)."""
        dropped = []
        while not self._out.empty():
            dropped.append(self._out.get_nowait())
        return dropped

    def close(self) -> None:
        self._writer.cancel()

    async def _write_loop(self) -> None:
        while True:
            data = await self._out.get()
            split = self._split()
            if split is None:
                await self._write(data)
                continue
            i = 0
            while i < len(data):
                n = self._rng.randint(1, split["max_chunk"])
                await self._write(data[i : i + n])
                i += n
                if i < len(data):
                    await asyncio.sleep(self._rng.uniform(0, split["max_gap_s"]))

    async def _write(self, data: bytes) -> None:
        bps = self._bps()
        for offset in range(0, len(data), CHUNK):
            chunk = data[offset : offset + CHUNK]
            if bps:
                # The chunk's last byte reaches the host 10 bits a byte after the line is free.
                now = time.monotonic()
                self._tx_free_at = max(now, self._tx_free_at) + len(chunk) * 10 / bps
                if self._tx_free_at - now > _MIN_SLEEP_S:
                    await asyncio.sleep(self._tx_free_at - now)
            if not await self._write_fully(chunk):
                self._note(f"host not reading: {len(data) - offset} bytes dropped")
                return

    async def _write_fully(self, chunk: bytes) -> bool:
        view = memoryview(chunk)
        stalled_since: float | None = None
        while view:
            try:
                n = self._port.write(bytes(view))
            except OSError as exc:
                self._note(f"write failed: {exc}")
                return False
            if n:
                view = view[n:]
                stalled_since = None
                continue
            now = time.monotonic()
            if stalled_since is None:
                stalled_since = now
            elif now - stalled_since > HOST_STALL_S:
                return False
            await asyncio.sleep(_MIN_SLEEP_S)
        return True
