"""`tgd-flash release --route app`: an ESP32 app image (what `tgd-flash build-image` builds)
as a release's bundle, signed as an `mpy` release is; the mistakes it refuses in one line;
and the offer the server would send, checked by the handset's own check_offer on the
ESP32-faithful VM (an ESP32 board takes it; the host board refuses it).

ESP-IDF is not on this machine: the image is a synthetic one (flash_testkit.fake_app_image,
the header bytes an app image starts with)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from flash_testkit import fake_app_image, one_line, run

from tgd_flash import release_file
from tgd_flash.micropython_vm import micropython

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench(tmp_path, capsys):
    """A key pair, a firmware tree at FW_VERSION 1.2.0, an app image."""
    assert run(["release-key", "--out", tmp_path / "keys"], capsys)[0] == 0
    fw = tmp_path / "firmware"
    (fw / "tgd").mkdir(parents=True)
    (fw / "tgd" / "device.py").write_text('FW_VERSION = "1.2.0"\n')
    image = fake_app_image(tmp_path / "build" / "micropython.bin")
    return tmp_path, fw, image


def app_release(tmp, fw, image, capsys, *extra):
    return run(["release", "--route", "app", "--image", image, "--key", tmp / "keys/release.key",
                "--version", "1.2.0", "--firmware", fw, "--out", tmp / "tgd-1.2.0-app.tgdrel",
                *extra], capsys)


def test_an_app_release_carries_the_image_whole_signed_with_its_route(bench, capsys):
    tmp, fw, image = bench
    code, out, err = app_release(tmp, fw, image, capsys)
    assert code == 0, err
    assert "route app" in out and "ESP32 handsets only" in out
    data = (tmp / "tgd-1.2.0-app.tgdrel").read_bytes()
    line, _, bundle = release_file.split_release(data)
    manifest = json.loads(line)
    assert bundle == image.read_bytes()
    assert (manifest["route"], manifest["size"], manifest["sha256"], manifest["version"]) == (
        "app", len(bundle), hashlib.sha256(bundle).hexdigest(), "1.2.0")
    code, out, err = run(["release-verify", tmp / "tgd-1.2.0-app.tgdrel", "--pub",
                          tmp / "keys/release.pub"], capsys)
    assert code == 0, err
    assert "OK, version 1.2.0 (min 0.0.0), route app: an ESP32 app image" in out


def test_release_verify_prints_the_route_of_an_mpy_release(bench, capsys):
    tmp, _, _ = bench
    seed = bytes.fromhex((tmp / "keys/release.key").read_text())
    rel = tmp / "tgd-1.2.0.tgdrel"
    rel.write_bytes(release_file.build_release(seed, "1.2.0", [("tgd/device.mpy", b"M\x06x")]))
    code, out, err = run(["release-verify", rel, "--pub", tmp / "keys/release.pub"], capsys)
    assert code == 0, err
    assert "route mpy: 1 files, no base" in out


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_app_route_mistakes_are_one_line_naming_the_fix(bench, capsys):
    tmp, fw, image = bench
    good = image.read_bytes()
    combined = bytearray(b"\xe9" + bytes(0x8000))
    combined[0x7000:0x7002] = b"\xaa\x50"  # the partition table of a 0x1000 image
    handset_max = release_file.MAX_BUNDLE_BYTES
    cases = [
        (["--base", "tgd-factory-1.0.0"], image, 2, "leave out --base with --route app"),
        ([], _write(tmp / "zip.bin", b"PK\x03\x04" + good[4:]), 2, "0xE9"),
        ([], _write(tmp / "firmware.bin", bytes(combined)), 2, "a combined image"),
        ([], _write(tmp / "boot.bin", b"\xe9" + bytes(99)), 2, "application description"),
        ([], tmp / "none.bin", 2, "cannot read it"),
        ([], _write(tmp / "big.bin", good + bytes(handset_max + 1 - len(good))), 19,
         f"more than the {handset_max} a handset takes"),
        ([], _write(tmp / "server.bin", good + bytes(release_file.MAX_RELEASE_BYTES - len(good))),
         19, f"more than the {release_file.MAX_RELEASE_BYTES} the server takes"),
    ]
    for extra, img, want_code, expected in cases:
        code, _, err = app_release(tmp, fw, img, capsys, *extra)
        assert code == want_code and expected in one_line(err), (img, extra, err)
    code, _, err = run(["release", "--route", "app", "--key", tmp / "keys/release.key", "--version",
                        "1.2.0", "--firmware", fw, "--out", tmp / "tgd-1.2.0-app.tgdrel"], capsys)
    assert code == 2 and "--image FILE is required with --route app" in one_line(err)
    code, _, err = run(["release", "--image", image, "--key", tmp / "keys/release.key", "--version",
                        "1.2.0", "--firmware", fw, "--out", tmp / "tgd-1.2.0-app.tgdrel"], capsys)
    assert code == 2 and "add --route app" in one_line(err)
    assert not (tmp / "tgd-1.2.0-app.tgdrel").exists()


_CHECK = """
import json, sys
sys.path.insert(0, ".frozen")
from tgd.ota import offer
from tgd.crypto.ed25519 import verify
o = json.load(open("offer.json"))
for routes in (("mpy", "app"), ("mpy",)):
    try:
        m, url = offer.check_offer(o["update"], "1.0.0", o["pub"], verify, routes)
        print("TAKEN", m["route"], m["size"], url)
    except offer.OtaError as e:
        print("REFUSED", e.args[0], e.args[1])
"""


@pytest.mark.skipif(not micropython().esp32_vm, reason="make esp32-vm")
def test_the_handset_takes_it_on_an_esp32_board_and_the_host_board_refuses_it(bench, capsys):
    """firmware/tgd/ota/run.py passes ("mpy", "app") when the board has ota_app_write (the
    ESP32 boards), ("mpy",) otherwise (the host board)."""
    tmp, fw, image = bench
    assert app_release(tmp, fw, image, capsys)[0] == 0
    line, sig, _ = release_file.split_release((tmp / "tgd-1.2.0-app.tgdrel").read_bytes())
    update = {"version": "1.2.0", "manifest": line.decode(), "sig": sig.hex(),
              "url": "/api/v1/fw/1.2.0/bundle"}  # as tgd_server.ota.offer_json makes it
    pub = (tmp / "keys/release.pub").read_text().strip()
    (tmp / "offer.json").write_text(json.dumps({"update": update, "pub": pub}))
    proc = subprocess.run([micropython().executable, "-X", "heapsize=48k", "-c", _CHECK],
                          cwd=tmp, capture_output=True, text=True, timeout=120)
    assert proc.stdout.splitlines() == [
        f"TAKEN app {image.stat().st_size} /api/v1/fw/1.2.0/bundle",
        "REFUSED bad_sig manifest_fields"], proc.stdout + proc.stderr
