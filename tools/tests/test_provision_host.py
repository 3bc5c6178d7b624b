"""provision --host-dir against the real server: all or nothing."""

from __future__ import annotations

import io
import json
import urllib.request

import pytest

from tgd_flash import cli, provision
from tgd_flash.errors import AlreadyRegistered, ServerUnreachable, TokenRefused
from tgd_flash.serverapi import ServerTarget


def api_get(server, path, token=None):
    req = urllib.request.Request(server.base_url + path)
    req.add_header("Authorization", f"Bearer {token or server.tech_token}")
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def host(tmp_path, server_target, device_id="NC0101", number="+687751101", **kw):
    return provision.provision_host(
        tmp_path / device_id,
        device_id=device_id,
        special_number=number,
        sms_number="+687700100",
        server=server_target,
        imei="866123045678901",
        iccid="8968701000000123456F",
        apn="mobilis",
        **kw,
    )


def test_host_provision_registers_and_writes_config(tmp_path, server):
    result = host(tmp_path, server.tech)
    cfg = json.loads((tmp_path / "NC0101" / "config.json").read_text())
    assert cfg == result.config and cfg["key"] == result.key and result.registered
    assert cfg["server_url"] == server.base_url + "/api/v1/device/messages"
    status, device = api_get(server, "/api/v1/devices/NC0101")
    assert status == 200
    assert device.get("special_number") == "+687751101"
    assert result.key not in json.dumps(device)  # keys are write-only


def test_refused_token_leaves_nothing(tmp_path, server):
    with pytest.raises(TokenRefused):
        host(tmp_path, ServerTarget(server.base_url, "not-a-token"))
    assert not (tmp_path / "NC0101" / "config.json").exists()
    assert api_get(server, "/api/v1/devices/NC0101")[0] == 404


def test_operator_token_cannot_register(tmp_path, server):
    with pytest.raises(TokenRefused):
        host(tmp_path, ServerTarget(server.base_url, server.operator_token))
    assert api_get(server, "/api/v1/devices/NC0101")[0] == 404


def test_id_already_registered_leaves_the_new_handset_untouched(tmp_path, server):
    host(tmp_path / "first", server.tech)
    with pytest.raises(AlreadyRegistered, match="already registered"):
        host(tmp_path / "second", server.tech, number="+687751199")
    assert not (tmp_path / "second" / "NC0101").exists() or not (
        tmp_path / "second" / "NC0101" / "config.json"
    ).exists()


def test_special_number_in_use_is_refused(tmp_path, server):
    host(tmp_path / "first", server.tech)
    with pytest.raises(AlreadyRegistered, match="special number"):
        host(tmp_path / "second", server.tech, device_id="NC0102")


def test_write_failure_removes_the_registration(tmp_path, server):
    (tmp_path / "NC0101" / "config.json").mkdir(parents=True)  # cannot be replaced by a file
    with pytest.raises(OSError):
        host(tmp_path, server.tech, overwrite=True)
    assert api_get(server, "/api/v1/devices/NC0101")[0] == 404
    assert sorted(p.name for p in (tmp_path / "NC0101").iterdir()) == ["config.json"]


def test_cli_host_batch(tmp_path, server, monkeypatch):
    csv = tmp_path / "bench.csv"
    csv.write_text(
        "device_id,special_number,imei,iccid\n"
        "NC0201,+687751201,866123045670001,8968701000000000001\n"
        "NC0202,+687751202,866123045670002,8968701000000000002\n"
    )
    monkeypatch.setenv("TGD_TECH_TOKEN", server.tech_token)
    out = io.StringIO()
    code = cli.main(
        ["provision", "--batch", str(csv), "--host-dir", str(tmp_path / "handsets"),
         "--sms-number", "+687700100", "--apn", "mobilis", "--server", server.base_url,
         "--heartbeat-interval-s", "900"],
        out=out,
    )
    assert code == 0, out.getvalue()
    for dev in ("NC0201", "NC0202"):
        cfg = json.loads((tmp_path / "handsets" / dev / "config.json").read_text())
        assert cfg["device_id"] == dev and cfg["heartbeat_interval_s"] == 900
        assert api_get(server, f"/api/v1/devices/{dev}")[0] == 200
    assert "OK   NC0201" in out.getvalue() and "OK   NC0202" in out.getvalue()


def test_cli_host_without_server(tmp_path, capsys):
    out = io.StringIO()
    code = cli.main(
        ["provision", "--host-dir", str(tmp_path), "--device-id", "NC0301", "--special-number",
         "+687751301", "--sms-number", "+687700100", "--apn", "mobilis", "--device-url", "http://127.0.0.1:9/api/v1/device/messages"],
        out=out,
    )
    assert code == 0
    assert json.loads((tmp_path / "config.json").read_text())["device_id"] == "NC0301"
    code = cli.main(
        ["provision", "--host-dir", str(tmp_path), "--device-id", "NC0301", "--special-number",
         "+687751301", "--sms-number", "+687700100", "--apn", "mobilis", "--device-url", "http://127.0.0.1:9/x"],
        out=out,
    )
    assert code == 8 and "already provisioned" in capsys.readouterr().err


def test_lost_answer_to_the_registration_is_cleaned_up(tmp_path, server):
    """The server registers the handset but its answer never arrives (network cut)."""
    import threading
    import time

    from werkzeug.serving import make_server

    app = server.app

    def slow_after_registering(environ, start_response):
        result = app(environ, start_response)
        if environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"] == "/api/v1/devices":
            time.sleep(1.5)  # registered and committed; the tool has given up waiting
        return result

    httpd = make_server("127.0.0.1", 0, slow_after_registering, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        target = ServerTarget(f"http://127.0.0.1:{httpd.server_port}", server.tech_token, timeout_s=0.5)
        with pytest.raises(ServerUnreachable):
            host(tmp_path, target)
    finally:
        httpd.shutdown()
    assert api_get(server, "/api/v1/devices/NC0101")[0] == 404
    assert not (tmp_path / "NC0101" / "config.json").exists()


def test_cli_host_release_pub(tmp_path, capsys):
    """--release-pub: the handset's config gets the release public key it checks updates
    with (docs/technician.md "The key ceremony"); the private key is refused in one line."""
    from tgd_flash import release_sign

    pub = release_sign.public_key(bytes(range(32)))
    (tmp_path / "release.pub").write_text(pub.hex().upper() + "\n")
    (tmp_path / "release.key").write_text(bytes(range(32)).hex() + "\n")
    argv = ["provision", "--host-dir", str(tmp_path / "h"), "--device-id", "NC0302",
            "--special-number", "+687751302", "--sms-number", "+687700100", "--apn", "mobilis",
            "--device-url", "http://127.0.0.1:9/api/v1/device/messages", "--release-pub"]
    code = cli.main(argv + [str(tmp_path / "release.key")], out=io.StringIO())
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "private key" in err, err
    assert not (tmp_path / "h" / "config.json").exists()
    assert cli.main(argv + [str(tmp_path / "release.pub")], out=io.StringIO()) == 0
    assert json.loads((tmp_path / "h" / "config.json").read_text())["release_pub"] == pub.hex()
