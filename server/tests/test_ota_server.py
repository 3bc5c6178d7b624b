"""Over-the-air updates on the server (issue 17): release upload and its refusals, the
bundle with Range, roll-outs over REST, the offer in heartbeat answers only, the `ota`
report, the audit trail. On SQLite and PostgreSQL."""

import hashlib
import json
import re

import pytest
from dbcheck import count
from sqlalchemy import select

from tgd_flash import release_file, release_sign
from tgd_server import db, ota
from tgd_server.models import AuditLog, DeviceOta, Release, Rollout

SEED = bytes(range(32))  # test keys, generated here: no key lives in the repository
OTHER_SEED = bytes(range(1, 33))
PUB = release_sign.public_key(SEED)
FILES = [("alarm.mpy", b"M\x06" + b"\x00" * 300), ("tgd/boards/demo.mpy", b"M\x06demo")]


def release_bytes(version="1.1.0", seed=SEED, files=FILES, min_version="1.0.0") -> bytes:
    return release_file.build_release(seed, version, files, min_version)


def signed(manifest: dict, bundle: bytes, seed=SEED) -> bytes:
    """A release whose manifest says what the test wants, validly signed."""
    line = release_file.canonical(manifest)
    return line + b"\n" + release_sign.sign(seed, line).hex().encode() + b"\n" + bundle


def manifest_for(bundle: bytes, **changes) -> dict:
    m = release_file.make_manifest("1.1.0", bundle, PUB, "1.0.0")
    m.update(changes)
    return m


@pytest.fixture
def ota_app(app):
    app.config["TGD_RELEASE_PUBS"] = PUB.hex()
    return app


@pytest.fixture
def tech(api_headers):
    return api_headers("technician")


def upload(client, headers, data: bytes):
    return client.post("/api/v1/releases", data=data, headers=headers,
                       content_type="application/octet-stream")


def audit_actions(app) -> list[tuple[str, str, str]]:
    with app.app_context():
        rows = db.get_session().execute(
            select(AuditLog.action, AuditLog.object_id, AuditLog.username).order_by(AuditLog.id)).all()
    return [tuple(r) for r in rows]


# --- upload -----------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["technician", "admin"])
def test_upload_of_a_signed_release(ota_app, client, api_headers, role):
    response = upload(client, api_headers(role), release_bytes())
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["version"] == "1.1.0" and body["key"] == release_sign.key_id(PUB)
    assert body["url"] == "/api/v1/fw/1.1.0/bundle"
    assert ("release_upload", "1.1.0") in [a[:2] for a in audit_actions(ota_app)]


@pytest.mark.parametrize("role", ["operator", "supervisor"])
def test_other_roles_may_not_upload(ota_app, client, api_headers, role):
    assert upload(client, api_headers(role), release_bytes()).status_code == 403
    assert count(ota_app, Release) == 0


def _bundle():
    return release_file.pack_bundle(FILES)


REFUSED = {
    # the manifest changed after signing (its version)
    "tampered_manifest": lambda: release_bytes().replace(b'"version":"1.1.0"', b'"version":"1.1.9"', 1),
    # signed by a key the server does not know
    "other_key": lambda: release_bytes(seed=OTHER_SEED),
    # the size in the signed manifest is not the bundle's (the SHA-256 is right)
    "size_mismatch": lambda: signed(manifest_for(_bundle(), size=len(_bundle()) + 1), _bundle()),
    # the SHA-256 in the signed manifest is not the bundle's (the size is right)
    "hash_mismatch": lambda: signed(manifest_for(_bundle(), sha256="0" * 64), _bundle()),
    # the bundle changed after signing
    "tampered_bundle": lambda: release_bytes()[:-1] + bytes([release_bytes()[-1] ^ 1]),
    # signed, size and hash right, but not a TGDB1 bundle
    "malformed_bundle": lambda: signed(manifest_for(b"PK\x03\x04zip"), b"PK\x03\x04zip"),
    # a bundle path that escapes the slot
    "path_escape": lambda: signed(manifest_for(b"TGDB1\n../boot.py 1\nx"), b"TGDB1\n../boot.py 1\nx"),
    # not a release file at all
    "garbage": lambda: b"hello\nworld\n",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_releases_store_nothing(ota_app, client, tech, case):
    response = upload(client, tech, REFUSED[case]())
    assert response.status_code == 422, response.get_json()
    detail = response.get_json()["detail"]
    expected = {"tampered_manifest": "signature", "other_key": "signature", "size_mismatch": "bytes",
                "hash_mismatch": "SHA-256", "tampered_bundle": "SHA-256", "malformed_bundle": "TGDB1",
                "path_escape": "relative path", "garbage": "signature"}[case]
    assert expected in detail
    assert count(ota_app, Release) == 0
    assert ("release_refused", "-") in [a[:2] for a in audit_actions(ota_app)]


def test_an_oversized_release_is_refused(ota_app, client, tech):
    big = release_bytes(files=[("big.mpy", b"\x00" * (ota.MAX_RELEASE_BYTES + 100))])
    assert len(big) < ota_app.config["MAX_CONTENT_LENGTH"]  # our limit, not Flask's
    response = upload(client, tech, big)
    assert response.status_code == 413 and response.get_json()["error"] == "too_large"
    assert count(ota_app, Release) == 0


def test_no_configured_key_refuses_everything(app, client, tech):
    response = upload(client, tech, release_bytes())
    assert response.status_code == 422 and "TGD_RELEASE_PUBS" in response.get_json()["detail"]


def test_a_version_is_uploaded_once(ota_app, client, tech):
    assert upload(client, tech, release_bytes()).status_code == 201
    assert upload(client, tech, release_bytes()).status_code == 409


# --- bundle download -----------------------------------------------------------------------

def test_bundle_download_whole_and_resumed_with_range(ota_app, client, tech):
    data = release_bytes()
    upload(client, tech, data)
    bundle = release_file.split_release(data)[2]
    whole = client.get("/api/v1/fw/1.1.0/bundle")
    assert whole.status_code == 200 and whole.data == bundle
    assert whole.headers["Accept-Ranges"] == "bytes"
    part = client.get("/api/v1/fw/1.1.0/bundle", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.data == bundle[:100]
    assert part.headers["Content-Range"] == f"bytes 0-99/{len(bundle)}"
    rest = client.get("/api/v1/fw/1.1.0/bundle", headers={"Range": "bytes=100-"})
    assert rest.status_code == 206 and part.data + rest.data == bundle
    assert hashlib.sha256(part.data + rest.data).hexdigest() == json.loads(data.split(b"\n")[0])["sha256"]
    past = client.get("/api/v1/fw/1.1.0/bundle", headers={"Range": f"bytes={len(bundle)}-"})
    assert past.status_code == 416
    assert client.get("/api/v1/fw/9.9.9/bundle").status_code == 404


# --- roll-outs and the heartbeat -------------------------------------------------------------

@pytest.fixture
def fleet(ota_app, client, tech, make_handset):
    assert upload(client, tech, release_bytes()).status_code == 201
    return [make_handset() for _ in range(3)]


def start_rollout(client, tech, canary, **extra):
    body = {"version": "1.1.0", "canary": canary, "stages": [34, 100], "canary_timeout_s": 3600}
    return client.post("/api/v1/rollouts", json={**body, **extra}, headers=tech)


def test_offer_goes_to_the_canary_in_its_heartbeat_answer(ota_app, client, tech, fleet):
    canary, other, _ = fleet
    assert start_rollout(client, tech, canary.device_id).status_code == 201
    answer = canary.post(client, canary.message("heartbeat")).get_json()
    offer = answer["update"]
    assert set(offer) == {"version", "manifest", "sig", "url"}
    assert offer["version"] == "1.1.0" and offer["url"] == "/api/v1/fw/1.1.0/bundle"
    # the handset verifies exactly line 1 with its release_pub
    assert release_sign.verify(PUB, offer["manifest"].encode(), bytes.fromhex(offer["sig"]))
    assert "update" not in other.post(client, other.message("heartbeat")).get_json()


@pytest.mark.parametrize("kind", ["alarm", "position", "test", "low_battery", "last_gasp"])
def test_never_an_offer_in_an_answer_to_anything_but_a_heartbeat(ota_app, client, tech, fleet, kind):
    canary = fleet[0]
    start_rollout(client, tech, canary.device_id)
    answer = canary.post(client, canary.message(kind)).get_json()
    assert answer["ok"] and "update" not in answer
    assert "update" in canary.post(client, canary.message("heartbeat")).get_json()


def test_ota_report_is_stored_and_absent_is_accepted(ota_app, client, fleet):
    handset = fleet[1]
    assert handset.post(client, handset.message("heartbeat")).status_code == 200
    ota_report = {"slot": "b", "res": "rolled_back", "ver": "1.1.0"}
    assert handset.post(client, handset.message("heartbeat", ota=ota_report)).status_code == 200
    with ota_app.app_context():
        row = db.get_session().get(DeviceOta, handset.device_id)
        assert (row.slot, row.result, row.tried_version, row.failed_version) == ("b", "rolled_back",
                                                                                 "1.1.0", "1.1.0")


@pytest.mark.parametrize("bad", [{"slot": "c"}, {"res": "great"}, {"ver": 3}, {"x": 1}, "ok"])
def test_a_malformed_ota_report_is_refused(ota_app, client, fleet, bad):
    handset = fleet[0]
    response = handset.post(client, handset.message("heartbeat", ota=bad))
    assert response.status_code == 400


def test_canary_rollback_pauses_the_rollout_by_itself(ota_app, client, tech, fleet):
    canary = fleet[0]
    start_rollout(client, tech, canary.device_id)
    assert "update" in canary.post(client, canary.message("heartbeat")).get_json()
    answer = canary.post(client, canary.message(
        "heartbeat", ota={"slot": "a", "res": "rolled_back", "ver": "1.1.0"})).get_json()
    assert "update" not in answer
    state = client.get("/api/v1/rollouts/current", headers=tech).get_json()
    assert state["phase"] == "paused" and "rolled_back" in state["reason"]
    assert ("rollout_paused", str(state["id"]), "system") in audit_actions(ota_app)
    # resuming with the failed canary is refused: a new roll-out is needed
    assert client.post("/api/v1/rollouts/current/resume", headers=tech).status_code == 409


def test_canary_ok_opens_the_first_stage(ota_app, client, tech, fleet):
    canary = fleet[0]
    start_rollout(client, tech, canary.device_id)
    canary.post(client, canary.message("heartbeat"))
    canary.post(client, canary.message("heartbeat", fw="1.1.0",
                                       ota={"slot": "b", "res": "ok", "ver": "1.1.0"}))
    state = client.get("/api/v1/rollouts/current", headers=tech).get_json()
    assert state["phase"] == "staged" and state["stage"] == 0 and state["on_version"] == 1


def test_pause_and_resume_over_rest_are_audited(ota_app, client, tech, fleet):
    canary = fleet[0]
    rollout_id = start_rollout(client, tech, canary.device_id).get_json()["id"]
    paused = client.post("/api/v1/rollouts/current/pause", headers=tech).get_json()
    assert paused["phase"] == "paused"
    assert "update" not in canary.post(client, canary.message("heartbeat")).get_json()
    assert client.post("/api/v1/rollouts/current/resume", headers=tech).get_json()["phase"] == "canary"
    assert "update" in canary.post(client, canary.message("heartbeat")).get_json()
    actions = [a[0] for a in audit_actions(ota_app) if a[1] == str(rollout_id)]
    assert actions == ["rollout_start", "rollout_pause", "rollout_resume"]


@pytest.mark.parametrize("body, status", [
    ({"version": "9.9.9", "canary": "NC0001"}, 404),
    ({"version": "1.1.0", "canary": "NC9999"}, 422),
    ({"version": "1.1.0", "canary": "NC0001", "stages": [50]}, 422),
    ({"version": "1.1.0", "canary": "NC0001", "extra": 1}, 400),
    ({"version": "1.1.0", "canary": "NC0001", "stages": 100}, 422),
    ({"version": "1.1.0", "canary": 7}, 422),
])
def test_bad_rollouts_are_refused(ota_app, client, tech, fleet, body, status):
    assert client.post("/api/v1/rollouts", json=body, headers=tech).status_code == status
    assert count(ota_app, Rollout) == 0


def test_operators_cannot_start_rollouts(ota_app, client, api_headers, fleet):
    response = start_rollout(client, api_headers("operator"), fleet[0].device_id)
    assert response.status_code == 403


# --- the console's fleet view ----------------------------------------------------------------

def test_devices_page_shows_version_slot_last_update_and_the_rollout(ota_app, client, tech, fleet,
                                                                    login):
    canary, rolled, quiet = fleet
    start_rollout(client, tech, canary.device_id)
    canary.post(client, canary.message("heartbeat"))  # offered
    rolled.post(client, rolled.message("heartbeat", ota={"slot": "a", "res": "rolled_back",
                                                          "ver": "1.1.0"}))
    login("technician")
    html = client.get("/appareils").get_data(as_text=True)
    rows = {m[0]: m[1] for m in re.findall(r'data-device-id="([^"]+)".*?</td>(.*?)</tr>', html, re.S)}
    assert "proposée : 1.1.0" in rows[canary.device_id]
    assert ">a<" in rows[rolled.device_id]
    assert "1.1.0 : annulée (retour à l&#39;ancienne version)" in rows[rolled.device_id]
    assert "—" in rows[quiet.device_id]
    assert "Déploiement de la version 1.1.0 : appareil pilote " + canary.device_id in html
    assert "Emplacement" in html and "Dernière mise à jour" in html


# --- `tgd-server release` and `tgd-server rollout` ----------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_server_cli_release_and_rollout(ota_app, tmp_path, monkeypatch, capsys, make_handset):
    from tgd_server import cli

    handset = make_handset()
    monkeypatch.setenv("TGD_DATABASE_URL", ota_app.config["TGD_DATABASE_URL"])
    monkeypatch.setenv("TGD_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("TGD_RELEASE_PUBS", PUB.hex())
    rel = tmp_path / "tgd-1.1.0.tgdrel"
    rel.write_bytes(release_bytes())
    assert cli.main(["release", "add", str(rel)]) == 0
    assert "release 1.1.0 stored" in capsys.readouterr().out
    assert cli.main(["rollout", "start", "--version", "1.1.0", "--canary", handset.device_id,
                     "--stages", "34,100"]) == 0
    assert f"canary {handset.device_id}" in capsys.readouterr().out
    assert cli.main(["rollout", "pause"]) == 0
    assert "paused" in capsys.readouterr().out
    assert cli.main(["rollout", "resume"]) == 0
    assert cli.main(["rollout", "status"]) == 0
    assert f"canary {handset.device_id}" in capsys.readouterr().out
    actions = [a for a in audit_actions(ota_app) if a[2].startswith("cli")]
    assert [a[0] for a in actions] == ["release_upload", "rollout_start", "rollout_pause",
                                       "rollout_resume"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("argv, expected", [
    (["release", "add", "/nonexistent.tgdrel"], "cannot read it"),
    (["rollout", "start", "--version", "9.9.9", "--canary", "NC0001"], "release add FILE"),
    (["rollout", "start", "--version", "1.1.0", "--canary", "NC0001", "--stages", "a,b"], "--stages"),
    (["rollout", "start", "--version", "1.1.0", "--canary", "NC0001", "--stages", "50"], "--stages"),
    (["rollout", "start", "--version", "1.1.0", "--canary", "NC9999"], "--canary"),
    (["rollout", "pause"], "no roll-out"),
])
def test_server_cli_mistakes_are_one_line(ota_app, tmp_path, monkeypatch, capsys, make_handset,
                                          argv, expected):
    from tgd_server import cli

    make_handset("NC0001")
    monkeypatch.setenv("TGD_DATABASE_URL", ota_app.config["TGD_DATABASE_URL"])
    monkeypatch.setenv("TGD_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("TGD_RELEASE_PUBS", PUB.hex())
    rel = tmp_path / "r.tgdrel"
    rel.write_bytes(release_bytes())
    assert cli.main(["release", "add", str(rel)]) == 0
    capsys.readouterr()
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code != 0 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert expected in err


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_trusted_keys_are_added_and_withdrawn_without_restart(app, client, tech, tmp_path, monkeypatch,
                                                              capsys):
    from tgd_server import cli

    monkeypatch.setenv("TGD_DATABASE_URL", app.config["TGD_DATABASE_URL"])
    monkeypatch.setenv("TGD_VAR_DIR", app.config["TGD_VAR_DIR"])
    monkeypatch.delenv("TGD_RELEASE_PUBS", raising=False)
    pub = tmp_path / "release.pub"
    pub.write_text(PUB.hex() + "\n")
    assert upload(client, tech, release_bytes()).status_code == 422  # nothing trusted yet
    assert cli.main(["release", "trust", str(pub)]) == 0
    assert upload(client, tech, release_bytes()).status_code == 201  # the running server sees it
    assert cli.main(["release", "distrust", str(pub)]) == 0
    assert upload(client, tech, release_bytes("1.2.0")).status_code == 422
    key = tmp_path / "release.key"
    key.write_text(SEED.hex())
    assert cli.main(["release", "trust", str(key)]) == 2
    assert "PRIVATE key" in capsys.readouterr().err
    actions = [a[0] for a in audit_actions(app) if a[2].startswith("cli")]
    assert actions == ["release_key_trust", "release_key_distrust"]


def test_a_running_rollout_must_be_paused_before_another_starts(ota_app, client, tech, fleet):
    assert start_rollout(client, tech, fleet[0].device_id).status_code == 201
    assert start_rollout(client, tech, fleet[1].device_id).status_code == 409
    client.post("/api/v1/rollouts/current/pause", headers=tech)
    second = start_rollout(client, tech, fleet[1].device_id)
    assert second.status_code == 201 and second.get_json()["canary"] == fleet[1].device_id
    assert ("rollout_stop", "1") in [a[:2] for a in audit_actions(ota_app)]


# --- route "app": an ESP32 app image as the bundle ---------------------------------------------

def app_image(size=5000) -> bytes:
    """A synthetic ESP32 app image (no ESP-IDF here): the image header (magic 0xE9), the
    first segment's header, the application description's magic word, padding."""
    head = bytes([0xE9, 3, 2, 0x20]) + (0x400D0000).to_bytes(4, "little") + bytes(16)
    segment = (0x3F400020).to_bytes(4, "little") + (256).to_bytes(4, "little")
    image = head + segment + (0xABCD5432).to_bytes(4, "little")
    return image + bytes((i * 7) & 0xFF for i in range(size - len(image)))


def test_an_app_release_is_stored_served_and_offered(ota_app, client, tech, make_handset):
    image = app_image()
    response = upload(client, tech, release_file.build_app_release(SEED, "1.1.0", image, "1.0.0"))
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["route"] == "app" and response.get_json()["size"] == len(image)
    listed = client.get("/api/v1/releases", headers=tech).get_json()["releases"]
    assert [(r["version"], r["route"]) for r in listed] == [("1.1.0", "app")]
    # the bundle the handset downloads is the image itself, resumable
    assert client.get("/api/v1/fw/1.1.0/bundle").data == image
    part = client.get("/api/v1/fw/1.1.0/bundle", headers={"Range": "bytes=4096-"})
    assert part.status_code == 206 and part.data == image[4096:]
    # the roll-out does not care for the route: the canary is offered it, route "app" signed
    canary = make_handset()
    assert start_rollout(client, tech, canary.device_id).status_code == 201
    offer = canary.post(client, canary.message("heartbeat")).get_json()["update"]
    assert json.loads(offer["manifest"])["route"] == "app"
    assert json.loads(offer["manifest"])["sha256"] == hashlib.sha256(image).hexdigest()
    assert release_sign.verify(PUB, offer["manifest"].encode(), bytes.fromhex(offer["sig"]))


APP_REFUSED = {
    # signed as an app release, but the bundle is a TGDB1 .mpy set
    "mpy_bundle_as_app": (lambda: signed(manifest_for(_bundle(), route="app"), _bundle()),
                          "0xE9"),
    # an ESP image that is no app (a bootloader: no application description)
    "no_app_desc": (lambda: signed(manifest_for(b"\xe9" + bytes(99), route="app"),
                                   b"\xe9" + bytes(99)), "application description"),
    # a route neither the server nor a handset knows
    "romfs": (lambda: signed(manifest_for(_bundle(), route="romfs"), _bundle()), "'mpy' and 'app'"),
    # an app release whose image was changed after signing
    "tampered_image": (lambda: (lambda d: d[:-1] + bytes([d[-1] ^ 1]))(
        release_file.build_app_release(SEED, "1.1.0", app_image(), "1.0.0")), "SHA-256"),
}


@pytest.mark.parametrize("case", sorted(APP_REFUSED))
def test_refused_app_releases_store_nothing(ota_app, client, tech, case):
    data, expected = APP_REFUSED[case]
    response = upload(client, tech, data())
    assert response.status_code == 422, response.get_json()
    assert expected in response.get_json()["detail"]
    assert count(ota_app, Release) == 0
