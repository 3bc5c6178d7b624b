"""`tgd-flash release-key | release | release-verify`: the keys, the bundle, the refusals."""

from __future__ import annotations

import io
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from flash_testkit import one_line, run

from tgd_flash import cli, release_file, release_sign
from tgd_flash.micropython_vm import micropython

REPO = Path(__file__).resolve().parents[2]
MPY_CROSS = REPO / "build" / "esp32-vm" / "mpy-cross"
needs_mpy_cross = pytest.mark.skipif(not MPY_CROSS.exists(), reason="make esp32-vm builds mpy-cross")


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
    """Two key pairs and one release 1.1.0 signed with the first."""
    if not MPY_CROSS.exists():
        pytest.skip("make esp32-vm builds mpy-cross")
    tmp = tmp_path_factory.mktemp("rel")
    for name in ("keys", "other"):
        assert cli.main(["release-key", "--out", str(tmp / name)], out=io.StringIO()) == 0
    fw = firmware_copy(tmp, "1.1.0")
    rel = tmp / "tgd-1.1.0.tgdrel"
    assert cli.main(["release", "--key", str(tmp / "keys/release.key"), "--version", "1.1.0",
                     "--firmware", str(fw), "--out", str(rel)], out=io.StringIO()) == 0
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


def test_the_bundle_holds_the_handset_modules_compiled_and_nothing_else(made):
    tmp, rel = made
    pub = bytes.fromhex((tmp / "keys" / "release.pub").read_text())
    release = release_file.check_release(rel.read_bytes(), [pub])
    names = [p for p, _ in release.files]
    assert names == sorted(names)
    assert {"tgd/alarm.mpy", "tgd/crypto/ed25519.mpy", "tgd/device.mpy", "tgd/__init__.mpy",
            "boards/demo.mpy"} <= set(names)
    assert all(n.endswith(".mpy") for n in names)
    host = {p.stem for p in (REPO / "firmware" / "host").glob("*.py")}
    assert not [n for n in names if Path(n).stem in host | {"manifest", "main"} or n.startswith("tests/")]
    m = release.manifest
    assert m["version"] == "1.1.0" and m["route"] == "mpy" and m["key"] == release_sign.key_id(pub)
    # line 1 is the canonical JSON of the manifest, exactly
    assert rel.read_bytes().split(b"\n", 1)[0] == release_file.canonical(m)


@pytest.mark.skipif(not micropython().esp32_vm, reason="make esp32-vm")
def test_the_bundle_modules_run_on_the_vm(made, tmp_path):
    _, rel = made
    _line, _sig, bundle = release_file.split_release(rel.read_bytes())
    for path, content in release_file.unpack_bundle(bundle):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(content)
    script = ("from tgd import device\nfrom tgd.crypto import ed25519\nimport boards.demo\n"
              "print(device.FW_VERSION, boards.demo.NAME, ed25519.__file__)\n")
    proc = subprocess.run([micropython().executable, "-c", script], capture_output=True, text=True,
                          env={"MICROPYPATH": f"{tmp_path}:.frozen"}, timeout=30)  # slot first
    assert proc.stdout.split() == ["1.1.0", "demo", str(tmp_path / "tgd" / "crypto" / "ed25519.mpy")], proc.stdout + proc.stderr


def test_release_verify_accepts_the_release_with_its_key(made, capsys):
    tmp, rel = made
    code, out, err = run(["release-verify", rel, "--pub", tmp / "keys/release.pub"], capsys)
    assert code == 0, err
    assert "OK, version 1.1.0" in out


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
