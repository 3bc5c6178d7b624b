"""Which firmware files go into a handset: read from firmware/manifest.py.

firmware/manifest.py is the single list of the firmware's modules: the ESP32
image build freezes it (``FROZEN_MANIFEST=``), the 32-bit VM freezes it, and
the ROMFS image and the `.mpy` upload take the same files from it. This reads
it the way MicroPython's own tools/manifestfile.py does (the manifest is Python
run with ``module``, ``package``, ``freeze``, ``include``, ``require``, ...),
without needing a MicroPython source tree: whatever comes from MicroPython or
micropython-lib (``$(MPY_DIR)``, ``require``: asyncio) is in every stock image
already and is listed as external, not as a firmware file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FirmwareMissing

MANIFEST_NAME = "manifest.py"


@dataclass(frozen=True)
class FirmwareFile:
    target: str  # path inside the image / on the board, e.g. "alarm.py" or "tgd/alarm.py"
    source: Path


@dataclass
class ManifestContents:
    files: list[FirmwareFile] = field(default_factory=list)
    external: list[str] = field(default_factory=list)  # includes/requires outside the project

    def targets(self) -> list[str]:
        return [f.target for f in self.files]


class _Options:
    def __init__(self, **kwargs: object) -> None:
        self.__dict__.update(kwargs)

    def defaults(self, **kwargs: object) -> None:
        for name, value in kwargs.items():
            self.__dict__.setdefault(name, value)

    def __getattr__(self, name: str) -> None:
        return None


class _Reader:
    def __init__(self) -> None:
        self.contents = ManifestContents()
        self._visited: set[Path] = set()

    def _globals(self, options: dict[str, object]) -> dict[str, object]:
        return {
            "metadata": lambda **_: None,
            "include": self.include,
            "require": self.require,
            "add_library": lambda *_a, **_k: None,
            "package": self.package,
            "module": self.module,
            "freeze": self.freeze,
            "freeze_as_mpy": self.freeze,
            "freeze_mpy": self.freeze,
            "options": _Options(**options),
        }

    def include(self, manifest_path: object, is_require: bool = False, **options: object) -> None:
        if not isinstance(manifest_path, str):
            for path in manifest_path:  # type: ignore[attr-defined]
                self.include(path, **options)
            return
        if "$(" in manifest_path:
            self.contents.external.append(manifest_path)
            return
        path = Path(os.path.abspath(manifest_path))
        if path.is_dir():
            path = path / MANIFEST_NAME
        if path in self._visited:
            return
        self._visited.add(path)
        try:
            code = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise FirmwareMissing(f"cannot read the firmware manifest {path}: {exc.strerror}") from exc
        previous = os.getcwd()
        os.chdir(path.parent)  # manifest paths are relative to the manifest, as in MicroPython
        try:
            # the project's own manifest, run as MicroPython's makemanifest runs it
            exec(compile(code, str(path), "exec"), self._globals(options))  # noqa: S102
        except FirmwareMissing:
            raise
        except Exception as exc:  # noqa: BLE001 - any mistake in the manifest is one clear error
            raise FirmwareMissing(f"error in the firmware manifest {path}: {exc}") from exc
        finally:
            os.chdir(previous)

    def require(self, name: str, *_args: object, **_kwargs: object) -> None:
        self.contents.external.append(f"require({name!r})")

    def _add(self, source: Path, target: str) -> None:
        if "$(" in str(source):
            self.contents.external.append(str(source))
            return
        source = Path(os.path.abspath(source))
        if not source.is_file():
            raise FirmwareMissing(f"the firmware manifest names {source}, which does not exist")
        self.contents.files.append(FirmwareFile(target.replace(os.sep, "/"), source))

    def module(self, module_path: str, base_path: str = ".", opt: object = None) -> None:
        if not module_path.endswith(".py"):
            raise FirmwareMissing(f"manifest: module({module_path!r}) must name a .py file")
        self._add(Path(base_path) / module_path, module_path)

    def package(self, package_path: str, files: object = None, base_path: str = ".", opt: object = None) -> None:
        self._search(Path(base_path), package_path, files)

    def freeze(self, path: str, script: object = None, opt: object = None) -> None:
        if script is None:
            self._search(Path(path), None, None)
        elif isinstance(script, str) and (Path(path) / script).is_dir():
            self._search(Path(path), script, None)
        elif isinstance(script, str):
            self._search(Path(path), None, (script,))
        else:
            self._search(Path(path), None, script)

    def _search(self, base: Path, package: str | None, files: object) -> None:
        if "$(" in str(base):
            self.contents.external.append(str(base / (package or "")))
            return
        root = base / package if package else base
        if files is None:
            names = sorted(
                str(p.relative_to(root)) for p in root.rglob("*.py") if "__pycache__" not in p.parts
            )
        else:
            names = list(files)  # type: ignore[call-overload]
        for name in names:
            target = f"{package}/{name}" if package else name
            self._add(root / name, target)


def read_manifest(manifest: Path) -> ManifestContents:
    reader = _Reader()
    reader.include(str(Path(manifest).resolve()))
    seen: set[str] = set()
    for f in reader.contents.files:
        if f.target in seen:
            raise FirmwareMissing(f"the firmware manifest lists {f.target} twice")
        seen.add(f.target)
    return reader.contents


def manifest_path(firmware_dir: Path) -> Path:
    return Path(firmware_dir) / MANIFEST_NAME


def firmware_files(firmware_dir: Path) -> list[FirmwareFile]:
    """The firmware's files as the manifest lists them (nothing host-only)."""
    path = manifest_path(firmware_dir)
    if not path.is_file():
        raise FirmwareMissing(f"no firmware manifest {path} (firmware/manifest.py lists the modules)")
    files = read_manifest(path).files
    if not files:
        raise FirmwareMissing(f"the firmware manifest {path} lists no firmware file")
    return files
