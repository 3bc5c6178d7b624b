"""REST API: bearer tokens, roles, write-only keys, audit of every view."""

import secrets

import pytest
from dbcheck import audit_rows, count, security_events
from sqlalchemy import select

from tgd_server import db
from tgd_server.devices import assign_case
from tgd_server.models import Alarm, Command, Device


def new_device(**changes):
    body = {"device_id": "NC0100", "special_number": "+687751100", "imei": "861234567890123",
            "iccid": "8968700000000000001", "key": secrets.token_hex(32), "fw_version": "1.0.0"}
    body.update(changes)
    return body


def all_text(response) -> str:
    return response.get_data(as_text=True)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer tgd_nope"},
                                     {"Authorization": "Basic abc"}])
def test_no_valid_token_is_401(app, client, headers):
    response = client.get("/api/v1/alarms", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert security_events(app) == ["bad_token"]


def test_technician_manages_devices_and_never_sees_keys(app, client, api_headers):
    tech = api_headers("technician")
    body = new_device()
    created = client.post("/api/v1/devices", json=body, headers=tech)
    assert created.status_code == 201
    assert body["key"] not in all_text(created) and "key" not in created.get_json()
    assert client.post("/api/v1/devices", json=body, headers=tech).status_code == 409
    listing = client.get("/api/v1/devices", headers=tech)
    shown = client.get("/api/v1/devices/NC0100", headers=tech)
    for response in (listing, shown):
        assert response.status_code == 200 and body["key"] not in all_text(response)
    assert shown.get_json()["special_number"] == "+687751100"
    assert client.delete("/api/v1/devices/NC0100", headers=tech).status_code == 204
    assert client.get("/api/v1/devices/NC0100", headers=tech).status_code == 404
    assert ("create_device", "device", "NC0100") in [r[1:] for r in audit_rows(app)]


@pytest.mark.parametrize("changes, code", [
    ({"key": "abc"}, "bad_value"),
    ({"device_id": "bad id"}, "bad_value"),
    ({"special_number": "phone"}, "bad_value"),
    ({"colour": "red"}, "unknown_field"),
])
def test_bad_device_is_refused_and_nothing_created(app, client, api_headers, changes, code):
    response = client.post("/api/v1/devices", json=new_device(**changes),
                           headers=api_headers("technician"))
    assert response.status_code == 400 and response.get_json()["error"] == code
    assert count(app, Device) == 0


def test_retired_device_id_can_be_registered_again_with_a_new_key(app, client, api_headers):
    tech = api_headers("admin")
    client.post("/api/v1/devices", json=new_device(), headers=tech)
    client.delete("/api/v1/devices/NC0100", headers=tech)
    again = client.post("/api/v1/devices", json=new_device(), headers=tech)
    assert again.status_code == 201


@pytest.mark.parametrize("role, method, path, status", [
    ("operator", "post", "/api/v1/devices", 403),
    ("supervisor", "post", "/api/v1/devices", 403),
    ("operator", "get", "/api/v1/devices", 403),
    ("technician", "get", "/api/v1/alarms", 403),
    ("admin", "get", "/api/v1/alarms?state=all", 403),
    ("technician", "get", "/api/v1/alarms?test=only", 200),
    ("technician", "get", "/api/v1/alarms/1", 403),
    ("technician", "post", "/api/v1/alarms/1/ack", 403),
    ("supervisor", "get", "/api/v1/devices", 200),
    ("operator", "get", "/api/v1/alarms", 200),
    ("supervisor", "get", "/api/v1/alarms?state=all", 200),
])
def test_roles(app, client, api_headers, role, method, path, status):
    response = getattr(client, method)(path, headers=api_headers(role), json={})
    assert response.status_code == status


def test_operator_lists_alarms_with_positions_and_each_view_is_audited(
        app, client, handset, api_headers):
    fix = {"m": "G", "lat": -22.2701, "lon": 166.4502, "acc": 6}
    handset.post(client, handset.message("alarm", fix=fix))
    handset.post(client, handset.message("position", fix={**fix, "lat": -22.2705}))
    headers = api_headers("operator")
    answer = client.get("/api/v1/alarms", headers=headers).get_json()
    assert len(answer["alarms"]) == 1
    alarm = answer["alarms"][0]
    assert alarm["aid"] == handset.aid and alarm["special_number"] == handset.special_number
    assert [p["lat"] for p in alarm["positions"]] == [-22.2701, -22.2705]
    assert alarm["positions"][0]["method"] == "G" and alarm["positions"][0]["acc_m"] == 6
    assert handset.key_hex not in all_text(client.get("/api/v1/alarms", headers=headers))
    rows = [r[1:] for r in audit_rows(app)]
    assert ("view_alarm", "alarm", str(alarm["id"])) in rows
    assert ("view_positions", "alarm", str(alarm["id"])) in rows


def test_alarm_detail_shows_case_and_timeline_and_audits_case_view(
        app, client, handset, api_headers):
    with app.app_context(), db.write_session() as session:
        case_id = assign_case(session, handset.device_id, "TJ-2026-0042", "Mme Exemple",
                              "12 rue de l'Alma, Nouméa", "chien dans la cour").id
    handset.post(client, handset.message("alarm"))
    alarm_id = client.get("/api/v1/alarms", headers=api_headers("operator")).get_json()[
        "alarms"][0]["id"]
    headers = api_headers("supervisor")
    detail = client.get(f"/api/v1/alarms/{alarm_id}", headers=headers).get_json()
    assert detail["case"]["name"] == "Mme Exemple" and detail["case"]["id"] == case_id
    assert detail["timeline"][0]["kind"] == "message"
    rows = [r[1:] for r in audit_rows(app)]
    assert ("view_case", "case", str(case_id)) in rows
    assert ("view_alarm", "alarm", str(alarm_id)) in rows
    assert ("view_positions", "alarm", str(alarm_id)) in rows


def test_technician_never_sees_the_case(app, client, handset, api_headers):
    with app.app_context(), db.write_session() as session:
        assign_case(session, handset.device_id, "TJ-1", "Mme Secret", "adresse secrète")
    text = all_text(client.get(f"/api/v1/devices/{handset.device_id}",
                               headers=api_headers("technician")))
    assert "Secret" not in text and "adresse" not in text


def test_ack_and_close(app, client, handset, api_headers):
    handset.post(client, handset.message("alarm"))
    with app.app_context():
        alarm_id = db.get_session().scalar(select(Alarm.id))
    headers = api_headers("operator")
    acked = client.post(f"/api/v1/alarms/{alarm_id}/ack", headers=headers).get_json()
    assert acked["state"] == "acknowledged" and acked["acknowledged_at"]
    closed = client.post(f"/api/v1/alarms/{alarm_id}/close", json={"note": "intervention faite"},
                         headers=headers).get_json()
    assert closed["state"] == "closed" and closed["close_note"] == "intervention faite"
    assert client.post(f"/api/v1/alarms/{alarm_id}/ack", headers=headers).status_code == 409
    assert client.get("/api/v1/alarms", headers=headers).get_json()["alarms"] == []
    assert len(client.get("/api/v1/alarms?state=all", headers=headers).get_json()["alarms"]) == 1
    assert client.post("/api/v1/alarms/999/ack", headers=headers).status_code == 404
    rows = [r[1:] for r in audit_rows(app)]
    assert ("ack_alarm", "alarm", str(alarm_id)) in rows
    assert ("close_alarm", "alarm", str(alarm_id)) in rows


def test_commands_through_the_api(app, client, handset, api_headers):
    operator = api_headers("operator")
    response = client.post(f"/api/v1/devices/{handset.device_id}/commands",
                           json={"type": "locate"}, headers=operator)
    assert response.status_code == 201
    refused = client.post(f"/api/v1/devices/{handset.device_id}/commands",
                          json={"type": "config", "set": {"heartbeat_interval_s": 900}},
                          headers=operator)
    assert refused.status_code == 403
    tech = api_headers("technician")
    bad = client.post(f"/api/v1/devices/{handset.device_id}/commands",
                      json={"type": "config", "set": {"heartbeat_interval_s": 5}}, headers=tech)
    assert bad.status_code == 400
    assert count(app, Command) == 1
    answer = handset.post(client, handset.message("heartbeat")).get_json()
    assert answer["cmds"] == [{"id": response.get_json()["id"], "type": "locate"}]


def test_devices_with_long_similar_ids_can_all_be_retired(app, client, api_headers):
    tech = api_headers("technician")
    for n in range(2):
        body = new_device(device_id=f"NOUMEA-NORD-SECTEUR-{n}", special_number=f"+68775120{n}")
        assert client.post("/api/v1/devices", json=body, headers=tech).status_code == 201
    for n in range(2):
        response = client.delete(f"/api/v1/devices/NOUMEA-NORD-SECTEUR-{n}", headers=tech)
        assert response.status_code == 204


def test_technician_sees_test_alarms_only_and_no_positions(app, client, handset, api_headers):
    fix = {"m": "G", "lat": -22.27, "lon": 166.45, "acc": 5}
    handset.post(client, handset.message("alarm", fix=fix))
    handset.aid = "00c0ffee"
    handset.post(client, handset.message("test", aid=handset.aid, fix=fix))
    tech = api_headers("technician")
    listed = client.get(f"/api/v1/alarms?state=all&test=only&device={handset.device_id}",
                        headers=tech)
    assert listed.status_code == 200
    alarms_seen = listed.get_json()["alarms"]
    assert [a["aid"] for a in alarms_seen] == ["00c0ffee"] and alarms_seen[0]["test"] is True
    assert "positions" not in alarms_seen[0] and "166.45" not in all_text(listed)
    operator = client.get("/api/v1/alarms?test=none", headers=api_headers("operator"))
    assert [a["test"] for a in operator.get_json()["alarms"]] == [False]
    assert client.get("/api/v1/alarms?test=maybe", headers=tech).status_code == 400
