def test_heartbeat_is_accepted(client, handset):
    response = handset.post(client, handset.message("heartbeat"))
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"ok": True, "seq": 1, "cmds": []}


def test_alarm_answer_carries_state(client, handset):
    response = handset.post(client, handset.message("alarm"))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["alarm"] == {"aid": handset.aid, "state": "received"}
