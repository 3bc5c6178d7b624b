"""A handset's MicroPython REPL, reached through mpremote's serial transport.

Works the same on a USB port (/dev/ttyUSB0) and on a virtual board
(socket://127.0.0.1:PORT). Everything here is I/O; callers pass plain values.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .errors import BoardError

# Runs on the board: sha256 of each file, None for a missing one.
_HASH_CODE = """
import hashlib, binascii
def _tgd_sha(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    h = hashlib.sha256(); b = bytearray(512); m = memoryview(b)
    while True:
        n = f.readinto(b)
        if not n:
            break
        h.update(m[:n])
    f.close()
    return binascii.hexlify(h.digest()).decode()
print(repr({p: _tgd_sha(p) for p in %r}))
del _tgd_sha
"""

# Runs on the board: every file and folder under the given folders, as
# (path, is_folder), parents before children; a missing folder gives nothing.
_TREE_CODE = """
import os
def _tgd_tree(d, out):
    try:
        entries = list(os.ilistdir(d))
    except OSError:
        return
    for e in entries:
        p = d + '/' + e[0]
        out.append((p, e[1] == 0x4000))
        if e[1] == 0x4000:
            _tgd_tree(p, out)
_tgd_out = []
for _d in %r:
    _tgd_tree(_d, _tgd_out)
print(repr(_tgd_out))
del _tgd_tree, _tgd_out
"""


def traceback_summary(text: str) -> str:
    """A MicroPython traceback in one line: the exception, and the function it came from."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return "no detail"
    frames = [ln for ln in lines if ln.startswith("File ")]
    if not frames:
        return " / ".join(lines)
    where = frames[-1].replace('"', "").replace("File ", "").split(", ")
    origin = f"{where[0]} {where[-1]}" if len(where) >= 2 else frames[-1]
    return f"{lines[-1]} ({origin})"


@dataclass(frozen=True)
class Implementation:
    version: str  # e.g. "1.29.0"
    mpy: int  # sys.implementation._mpy
    machine: str

    @property
    def mpy_version(self) -> int:
        return self.mpy & 0xFF

    @property
    def mpy_sub_version(self) -> int:
        return (self.mpy >> 8) & 3

    @property
    def native_arch(self) -> int:
        return self.mpy >> 10


class Board:
    """One open REPL session. Use as a context manager."""

    def __init__(self, port: str) -> None:
        self.port = port
        self._transport = None

    def open(self) -> Board:
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        try:
            self._transport = SerialTransport(self.port, baudrate=115200)
        except (TransportError, OSError) as exc:
            raise BoardError(f"cannot open {self.port}: {exc}") from exc
        try:
            self._transport.enter_raw_repl(soft_reset=False)
        except (TransportError, OSError) as exc:
            self.close()
            raise BoardError(
                f"no MicroPython REPL on {self.port}: flash MicroPython first "
                f"(tgd-flash flash --image ...) or close any other program using the port ({exc})"
            ) from exc
        return self

    def close(self) -> None:
        if self._transport is None:
            return
        try:
            if self._transport.in_raw_repl:
                self._transport.exit_raw_repl()
            self._transport.close()
        except Exception:  # closing a dead port must not hide the real error
            pass
        self._transport = None

    def __enter__(self) -> Board:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running code ----------------------------------------------------
    def run(
        self,
        code: str,
        timeout_s: float = 10,
        on_output: Callable[[bytes], None] | None = None,
    ) -> str:
        """Run ``code`` on the board; return what it printed.

        ``timeout_s`` is the longest silence allowed (the board printing
        progress keeps it alive). An exception on the board raises BoardError
        carrying its traceback.
        """
        from mpremote.transport import TransportError

        t = self._require()
        try:
            t.exec_raw_no_follow(code)
            out, err = t.follow(timeout_s, data_consumer=on_output)
        except (TransportError, OSError) as exc:
            raise BoardError(f"the board on {self.port} stopped answering: {exc}") from exc
        if err:
            raise BoardError(f"error on the board: {traceback_summary(err.decode(errors='replace'))}")
        return out.decode(errors="replace")

    def eval(self, expression: str, timeout_s: float = 10) -> object:
        text = self.run(f"print(repr({expression}))", timeout_s=timeout_s).strip()
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError) as exc:
            raise BoardError(f"unexpected answer from the board: {text[:200]!r}") from exc

    def implementation(self) -> Implementation:
        version, mpy, machine = self.eval(
            "('.'.join(str(x) for x in __import__('sys').implementation.version[:3]), "
            "getattr(__import__('sys').implementation, '_mpy', 0), "
            "getattr(__import__('sys').implementation, '_machine', ''))"
        )
        return Implementation(str(version), int(mpy), str(machine))

    # -- files -----------------------------------------------------------
    def listdir(self, path: str = "") -> list[str]:
        return list(self.eval(f"__import__('os').listdir({path!r})"))

    def tree(self, folders: Iterable[str]) -> list[tuple[str, bool]]:
        """(path, is_folder) of everything under `folders` ("tgd/modem/at.mpy"), parents first."""
        return [(str(p), bool(d)) for p, d in self.eval_code(_TREE_CODE % (list(folders),), timeout_s=30)]

    def make_folders(self, paths: Iterable[str]) -> None:
        """Create each folder (parents first) that is not there yet."""
        paths = list(paths)
        if paths:
            self.run(f"import os\nfor _p in {paths!r}:\n try:\n  os.mkdir(_p)\n except OSError:\n  pass\n")

    def remove_folder(self, path: str) -> None:
        self.run(f"__import__('os').rmdir({path!r})")

    def read_file(self, path: str) -> bytes | None:
        code = (
            f"try:\n f=open({path!r},'rb')\nexcept OSError:\n print('None')\nelse:\n"
            " print(repr(f.read()));f.close()"
        )
        text = self.run(code).strip()
        return None if text == "None" else ast.literal_eval(text)

    def read_json(self, path: str) -> object | None:
        data = self.read_file(path)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return {"__unreadable__": True}

    def write_file(
        self,
        path: str,
        data: bytes,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        from mpremote.transport import TransportError

        t = self._require()
        try:
            t.fs_writefile(path, data, chunk_size=2048, progress_callback=progress)
        except (TransportError, OSError) as exc:
            raise BoardError(f"writing {path} on the board failed: {exc}") from exc

    def remove(self, path: str) -> None:
        self.run(f"__import__('os').remove({path!r})")

    def remove_if_exists(self, path: str) -> None:
        self.run(f"try:\n __import__('os').remove({path!r})\nexcept OSError:\n pass")

    def rename(self, src: str, dst: str) -> None:
        self.run(f"__import__('os').rename({src!r}, {dst!r})")

    def sha256(self, paths: Iterable[str]) -> dict[str, str | None]:
        paths = list(paths)
        return dict(self.eval_code(_HASH_CODE % (paths,), timeout_s=30))

    def eval_code(self, code: str, timeout_s: float = 10) -> object:
        """Run code whose last printed line is a Python literal; return it."""
        text = self.run(code, timeout_s=timeout_s).strip().splitlines()
        if not text:
            raise BoardError("the board printed nothing")
        try:
            return ast.literal_eval(text[-1])
        except (ValueError, SyntaxError) as exc:
            raise BoardError(f"unexpected answer from the board: {text[-1][:200]!r}") from exc

    def soft_reset(self) -> None:
        """Soft reset into the raw REPL (frees every imported module)."""
        from mpremote.transport import TransportError

        t = self._require()
        for attempt in (1, 2):
            try:
                t.exit_raw_repl()
                t.enter_raw_repl(soft_reset=True)
                return
            except (TransportError, OSError) as exc:
                # Once more: a MicroPython that sets its terminal up again when it
                # leaves the raw REPL (the unix port: tcsetattr TCSAFLUSH) may drop the
                # Ctrl-C / Ctrl-A that follow Ctrl-B at once; the second try finds
                # it settled. A board that is really gone fails twice.
                if attempt == 2:
                    raise BoardError(f"soft reset of the board on {self.port} failed: {exc}") from exc

    def _require(self):
        if self._transport is None:
            raise BoardError("board not open")
        return self._transport
