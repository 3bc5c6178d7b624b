"""`tgd-flash release-key | release | release-verify`: the keys, the bundle, the refusals.

Releases are made as docs/technician.md says: `--base` the tag of the factory firmware
in a real git checkout (a temporary one), both trees compiled by the real mpy-cross of
the ESP32-faithful VM (build/esp32-vm/mpy-cross)."""

from __future__ import annotations

import io
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from flash_testkit import factory_checkout, git, one_line, run, set_fw_version

from tgd_flash import cli, release_file, release_sign
from tgd_flash.micropython_vm import micropython
from tgd_flash.release import BASE_NOTE, SLOT_HEAP_BUDGET, compile_bundle, compile_module

REPO = Path(__file__).resolve().parents[2]
MPY_CROSS = REPO / "build" / "esp32-vm" / "mpy-cross"
needs_mpy_cross = pytest.mark.skipif(not MPY_CROSS.exists(), reason="make esp32-vm builds mpy-cross")
FACTORY = "tgd-factory-1.0.0"


def firmware_copy(dest: Path, version: str) -> Path:
    """The firmware tree at `version`, with a module added in a package subfolder."""
    fw = dest / "firmware"
    shutil.copytree(REPO / "firmware", fw, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    device = fw / "tgd" / "device.py"
    device.write_text(device.read_text().replace('FW_VERSION = "1.0.0"', f'FW_VERSION = "{version}"'))
    (fw / "boards" / "demo.py").write_text("NAME = 'demo'\n")
    (fw / "tests").mkdir()
    (fw / "tests" / "test_x.py").write_text("raise SystemExit\n")
    return fw


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A checkout whose factory firmware 1.0.0 (with a demo board module) is tagged
    FACTORY, its firmware now at 1.1.0 (not committed); two key pairs; the release
    1.1.0 over FACTORY signed with the first."""
    if not MPY_CROSS.exists():
        pytest.skip("make esp32-vm builds mpy-cross")
    tmp = tmp_path_factory.mktemp("rel")
    fw = factory_checkout(tmp, FACTORY, {"boards/demo.py": "NAME = 'demo'\n"})
    set_fw_version(fw, "1.1.0")
    for name in ("keys", "other"):
        assert cli.main(["release-key", "--out", str(tmp / name)], out=io.StringIO()) == 0
    rel = tmp / "tgd-1.1.0.tgdrel"
    assert cli.main(["release", "--key", str(tmp / "keys/release.key"), "--version", "1.1.0",
                     "--base", FACTORY, "--firmware", str(fw), "--out", str(rel)],
                    out=io.StringIO()) == 0
    return tmp, rel


def test_release_key_is_private_and_the_pub_matches(made):
    tmp, _ = made
    key = tmp / "keys" / "release.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    seed = bytes.fromhex(key.read_text())
    pub = bytes.fromhex((tmp / "keys" / "release.pub").read_text())
    assert len(seed) == 32 and release_sign.public_key(seed) == pub


def test_release_key_does_not_overwrite_a_key(made, capsys):
    tmp, _ = made
    before = (tmp / "keys" / "release.key").read_text()
    code, _, err = run(["release-key", "--out", tmp / "keys"], capsys)
    assert code == 2 and "--out" in one_line(err) and "already" in err
    assert (tmp / "keys" / "release.key").read_text() == before


@needs_mpy_cross
def test_the_tree_compiled_is_the_handset_modules_and_nothing_else(tmp_path):
    fw = firmware_copy(tmp_path, "1.1.0")
    files = compile_bundle(fw, MPY_CROSS)
    names = [p for p, _ in files]
    assert names == sorted(names)
    assert {"tgd/alarm.mpy", "tgd/crypto/ed25519.mpy", "tgd/device.mpy", "tgd/__init__.mpy",
            "boards/demo.mpy"} <= set(names)
    assert all(n.endswith(".mpy") for n in names)
    host = {p.stem for p in (REPO / "firmware" / "host").glob("*.py")}
    assert not [n for n in names if Path(n).stem in host | {"manifest", "main"} or n.startswith("tests/")]


def test_the_release_holds_the_module_changed_since_the_factory_tag(made):
    tmp, rel = made
    pub = bytes.fromhex((tmp / "keys" / "release.pub").read_text())
    release = release_file.check_release(rel.read_bytes(), [pub])
    files = dict(release.files)
    assert sorted(files) == [BASE_NOTE, "tgd/device.mpy"]  # FW_VERSION changed, nothing else
    assert files["tgd/device.mpy"] == compile_module(MPY_CROSS, "tgd/device", tmp / "firmware/tgd/device.py")
    commit = git(tmp, "rev-parse", FACTORY).strip()
    assert files[BASE_NOTE] == f"base {FACTORY} {commit} 1.0.0\n".encode()
    m = release.manifest
    assert m["version"] == "1.1.0" and m["route"] == "mpy" and m["key"] == release_sign.key_id(pub)
    assert set(m) == {"v", "version", "route", "size", "sha256", "key", "min"}  # the contract's
    # line 1 is the canonical JSON of the manifest, exactly
    assert rel.read_bytes().split(b"\n", 1)[0] == release_file.canonical(m)


@needs_mpy_cross
def test_a_delta_is_against_the_factory_tag_not_the_last_commit(tmp_path, capsys):
    """aml.py changed in a commit after the factory tag (say, release 1.1.0's), then
    FW_VERSION 1.2.0 and a new module, not committed: the delta carries all that
    changed since the factory firmware, and not a module whose change is only a comment
    (same .mpy)."""
    fw = factory_checkout(tmp_path, FACTORY)
    aml = fw / "tgd" / "aml.py"
    aml.write_text(aml.read_text() + "\n\ndef fixed():\n    return 1\n")
    set_fw_version(fw, "1.1.0")
    git(tmp_path, "commit", "-qam", "1.1.0")
    git(tmp_path, "tag", "tgd-1.1.0")
    set_fw_version(fw, "1.2.0")
    (fw / "tgd" / "uplink" / "extra.py").write_text("X = 2\n")
    vibrate = fw / "tgd" / "vibrate.py"
    vibrate.write_text(vibrate.read_text() + "\n# a comment only\n")
    keys = tmp_path / "keys"
    assert cli.main(["release-key", "--out", str(keys)], out=io.StringIO()) == 0
    rel = tmp_path / "r.tgdrel"
    code, out, err = run(["release", "--key", keys / "release.key", "--version", "1.2.0",
                          "--base", FACTORY, "--firmware", fw, "--out", rel], capsys)
    assert code == 0, err
    assert "3 modules (tgd/aml.mpy, tgd/device.mpy, tgd/uplink/extra.mpy)" in out, out
    assert re.search(r"\d+ bytes of heap", out), out
    assert f"delta over the factory firmware {FACTORY}" in out, out
    pub = bytes.fromhex((keys / "release.pub").read_text())
    files = dict(release_file.check_release(rel.read_bytes(), [pub]).files)
    assert sorted(files) == [BASE_NOTE, "tgd/aml.mpy", "tgd/device.mpy", "tgd/uplink/extra.mpy"]
    for name in ("tgd/aml", "tgd/device", "tgd/uplink/extra"):
        assert files[name + ".mpy"] == compile_module(MPY_CROSS, name, fw / f"{name}.py"), name
    # against the last release's tag instead, aml.py would be missing: the overlay over
    # the frozen 1.0.0 would then run 1.0.0's aml (the rule docs/technician.md gives)
    code, out, _ = run(["release", "--key", keys / "release.key", "--version", "1.2.0",
                        "--base", "tgd-1.1.0", "--firmware", fw, "--out", tmp_path / "last.tgdrel"],
                       capsys)
    assert code == 0 and "2 modules (tgd/device.mpy, tgd/uplink/extra.mpy)" in out, out


def _change(fw: Path, rel: str, text: str = "\n\ndef changed():\n    return 2\n") -> None:
    path = fw / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((path.read_text() if path.exists() else "") + text)


REFUSALS = {
    "unchanged": (None, [], 19, "nothing to release: the firmware compiles to the same .mpy as --base "),
    "removed": ("1.1.0", [lambda fw: (fw / "tgd/vibrate.py").unlink()], 19,
                "tgd/vibrate.py was removed since --base "),
    "board": ("1.1.0", [lambda fw: _change(fw, "boards/esp32.py")], 19,
              "boards/esp32.py changed since --base "),
    "package init": ("1.1.0", [lambda fw: _change(fw, "tgd/uplink/__init__.py")], 19,
                     "a package's __init__ is not overlaid"),
    "new package": ("1.1.0", [lambda fw: _change(fw, "tgd/newpkg/mod.py", "X = 1\n")], 19,
                    "its package is new"),
    "boot module": ("1.1.0", [lambda fw: _change(fw, "tgd/ota/slot.py")], 19,
                    "main.py runs it before the slot is loaded"),
    "too big": ("1.1.0", [lambda fw: _change(fw, "tgd/alarm.py"), lambda fw: _change(fw, "tgd/modem/sim7600.py")],
                19, f"more than the {SLOT_HEAP_BUDGET} its alarm can spare at 48 KB"),
    # 4.8 KB of .mpy, but imported at boot only from a slot: their tables cost ~9 KB
    "heavy imports": ("1.1.0", [lambda fw: _change(fw, "tgd/crypto/sha512.py"),
                                lambda fw: _change(fw, "tgd/crypto/ed25519.py")],
                      19, f"more than the {SLOT_HEAP_BUDGET} its alarm can spare at 48 KB"),
    "import fails": ("1.1.0", [lambda fw: _change(fw, "tgd/aml.py", "\nraise ImportError('broken')\n")],
                     19, "do not load over the firmware on the VM"),
    "same version": (None, [lambda fw: _change(fw, "tgd/aml.py")], 19,
                     "the factory firmware at --base tgd-factory-1.0.0 is already 1.0.0"),
    "bad ref": ("1.1.0", [], 2, "--base nope: no such tag or commit in "),
}


@needs_mpy_cross
@pytest.mark.parametrize("case", list(REFUSALS))
def test_what_a_delta_cannot_carry_is_refused_in_one_line(tmp_path, capsys, case):
    version, changes, exit_code, expected = REFUSALS[case]
    fw = factory_checkout(tmp_path / "checkout", FACTORY)
    if version:
        set_fw_version(fw, version)
    for change in changes:
        change(fw)
    keys = tmp_path / "keys"
    assert cli.main(["release-key", "--out", str(keys)], out=io.StringIO()) == 0
    out_file = tmp_path / "r.tgdrel"
    code, _, err = run(["release", "--key", keys / "release.key", "--version", version or "1.0.0",
                        "--base", "nope" if case == "bad ref" else FACTORY, "--firmware", fw,
                        "--out", out_file], capsys)
    assert code == exit_code and expected in one_line(err), err
    assert not out_file.exists()


@needs_mpy_cross
def test_a_base_outside_a_git_checkout_is_a_one_line_error(tmp_path, capsys):
    fw = firmware_copy(tmp_path, "1.1.0")
    assert cli.main(["release-key", "--out", str(tmp_path / "keys")], out=io.StringIO()) == 0
    code, _, err = run(["release", "--key", tmp_path / "keys/release.key", "--version", "1.1.0",
                        "--base", FACTORY, "--firmware", fw, "--out", tmp_path / "r.tgdrel"], capsys)
    assert code == 2 and "is not in a git checkout" in one_line(err), err


@needs_mpy_cross
def test_the_whole_tree_is_refused_naming_base(made, tmp_path, capsys):
    """~80 KB of .mpy: a slot that large does not even boot at 48 KB."""
    tmp, _ = made
    code, _, err = run(["release", "--key", tmp / "keys/release.key", "--version", "1.1.0",
                        "--firmware", tmp / "firmware", "--out", tmp_path / "w.tgdrel"], capsys)
    assert code == 19 and "use --base REF" in one_line(err) and "bytes of .mpy" in err, err
    assert not (tmp_path / "w.tgdrel").exists()


@pytest.mark.skipif(not micropython().esp32_vm, reason="make esp32-vm")
def test_the_release_runs_on_the_vm_over_the_frozen_firmware(made, tmp_path):
    """The handset's own unpack (tgd/ota/run.py) writes the bundle into a slot, its
    overlay (tgd/ota/overlay.py) loads it over the frozen firmware, at 48 KB."""
    _, rel = made
    _line, _sig, bundle = release_file.split_release(rel.read_bytes())
    (tmp_path / "stage.bin").write_bytes(bundle)
    script = ("import sys\nsys.path.insert(0, '.frozen')\nimport asyncio\n"
              "from tgd.ota import run, overlay\n"
              f"asyncio.run(run.unpack('stage.bin', {len(bundle)}, 'slot'))\n"
              "print(overlay.load('slot'))\nfrom tgd import device, alarm\n"
              "print(device.FW_VERSION, device.__file__, alarm.__file__)\n")
    proc = subprocess.run([micropython().executable, "-X", "heapsize=48k", "-c", script],
                          capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert proc.stdout.split("\n")[:2] == ["['tgd.device']", "1.1.0 slot/tgd/device.mpy tgd/alarm.py"], (
        proc.stdout + proc.stderr)
    assert (tmp_path / "slot" / BASE_NOTE).read_text().startswith(f"base {FACTORY} ")


def test_release_verify_accepts_the_release_with_its_key(made, capsys):
    tmp, rel = made
    code, out, err = run(["release-verify", rel, "--pub", tmp / "keys/release.pub"], capsys)
    assert code == 0, err
    assert "OK, version 1.1.0" in out
    assert f"delta over the factory firmware {FACTORY} (commit " in out and "FW_VERSION 1.0.0" in out


def test_release_verify_refuses_another_key(made, capsys):
    tmp, rel = made
    code, _, err = run(["release-verify", rel, "--pub", tmp / "other/release.pub"], capsys)
    assert code == 19 and "signature does not verify" in one_line(err)


@pytest.mark.parametrize("where", ["manifest", "bundle", "signature"])
def test_release_verify_refuses_a_tampered_release(made, tmp_path, capsys, where):
    tmp, rel = made
    data = bytearray(rel.read_bytes())
    first = data.index(b"\n")
    at = {"manifest": data.index(b'"1.1.0"') + 3, "bundle": len(data) - 10, "signature": first + 5}[where]
    data[at] = data[at] ^ 1 if where != "signature" else (ord("0") if data[at] != ord("0") else ord("1"))
    bad = tmp_path / "bad.tgdrel"
    bad.write_bytes(bytes(data))
    code, _, err = run(["release-verify", bad, "--pub", tmp / "keys/release.pub"], capsys)
    line = one_line(err)
    assert code == 19
    assert ("SHA-256" in line) if where == "bundle" else ("signature does not verify" in line)


def test_release_cli_mistakes_are_one_line_naming_the_flag(made, tmp_path, capsys):
    tmp, rel = made
    key, pub = tmp / "keys/release.key", tmp / "keys/release.pub"
    fw = tmp / "firmware"
    cases = [
        (["release", "--version", "1.1.0", "--out", tmp_path / "x"], "--key FILE is required"),
        (["release", "--key", key, "--out", tmp_path / "x"], "--version is required"),
        (["release", "--key", key, "--version", "1.1.0"], "--out FILE is required"),
        (["release", "--key", key, "--version", "v1.1", "--out", tmp_path / "x"], "--version v1.1"),
        (["release", "--key", pub, "--version", "1.1.0", "--out", tmp_path / "x"], "that is the public key"),
        (["release", "--key", tmp_path / "nokey", "--version", "1.1.0", "--out", tmp_path / "x"],
         "cannot read it"),
        (["release", "--key", key, "--version", "1.2.0", "--firmware", fw, "--out", tmp_path / "x"],
         "FW_VERSION"),
        (["release", "--key", key, "--version", "1.1.0", "--firmware", tmp_path / "nofw",
          "--out", tmp_path / "x"], "--firmware"),
        (["release-verify", rel], "--pub FILE is required"),
        (["release-verify", rel, "--pub", key], "that is the private key"),
        (["release-key"], "--out DIR is required"),
    ]
    for argv, expected in cases:
        code, _, err = run(argv, capsys)
        assert code != 0 and expected in one_line(err), (argv, err)
    assert not (tmp_path / "x").exists()


def test_a_key_readable_by_others_is_refused(made, tmp_path, capsys):
    tmp, _ = made
    key = tmp_path / "release.key"
    key.write_text((tmp / "keys/release.key").read_text())
    key.chmod(0o644)
    code, _, err = run(["release", "--key", key, "--version", "1.1.0", "--firmware", tmp / "firmware",
                        "--out", tmp_path / "x.tgdrel"], capsys)
    assert code == 2 and "chmod 600" in one_line(err)


def test_no_release_key_in_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    assert not [p for p in tracked if p.endswith((".key", ".tgdrel")) or Path(p).name == "release.pub"]


def test_release_upload_to_the_server_with_a_technician_token(made, server, tmp_path, capsys):
    tmp, rel = made
    token = tmp_path / "token"
    token.write_text(server.tech_token + "\n")
    base = ["release-upload", rel, "--server", server.base_url, "--token-file", token]
    code, _, err = run(base, capsys)  # the server trusts no release key yet
    assert code == 10 and "HTTP 422" in one_line(err) and "TGD_RELEASE_PUBS" in err
    server.app.config["TGD_RELEASE_PUBS"] = (tmp / "keys/release.pub").read_text().strip()
    code, out, err = run(base, capsys)
    assert code == 0, err
    assert "release 1.1.0 on" in out
    data = bytearray(rel.read_bytes())
    data[-3] ^= 1
    bad = tmp_path / "bad.tgdrel"
    bad.write_bytes(bytes(data))
    code, _, err = run(["release-upload", bad, "--server", server.base_url, "--token-file", token],
                       capsys)
    assert code == 10 and "SHA-256" in one_line(err)
    code, _, err = run(["release-upload", rel, "--token-file", token], capsys)
    assert code == 2 and "--server" in one_line(err)
