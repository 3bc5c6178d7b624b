"""REST API for tools (docs/openapi.yaml): bearer tokens, roles, audit of every view.

Technicians and admins manage devices and never see cases; operators and
supervisors read alarms with their positions. No answer ever carries a device key.
"""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from sqlalchemy import select

from . import alarms, db
from .alarms import AlarmError
from .auth import CASE_READERS, DEVICE_MANAGERS, DEVICE_READERS, audit, audit_many, require_role
from .devices import DeviceError, device_json, queue_command, register_device, retire_device
from .models import Alarm, Device
from .security_log import clean_text

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_LIST = 500


def _error(status: int, code: str, detail: str):
    response = jsonify({"ok": False, "error": code, "detail": detail})
    response.status_code = status
    return response


def _json_body() -> dict | None:
    """The JSON object of the body, cleaned of what no database stores (NUL, lone
    surrogates); None when the body is not a JSON object."""
    data = request.get_json(silent=True)
    return clean_json(data) if isinstance(data, dict) else None


def clean_json(value):
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    return value


@bp.errorhandler(DeviceError)
@bp.errorhandler(AlarmError)
def _known_error(exc):
    db.get_session().rollback()
    return _error(exc.status, exc.code, exc.detail)


# --- devices ------------------------------------------------------------------------

@bp.post("/devices")
@require_role(*DEVICE_MANAGERS)
def create_device():
    fields = _json_body()
    if fields is None:
        return _error(400, "malformed_json", "a JSON object is required")
    with db.write_session() as session:
        device = register_device(session, fields)
        answer = device_json(device)
    audit(g.user, "create_device", "device", answer["device_id"])
    return jsonify(answer), 201


@bp.delete("/devices/<device_id>")
@require_role(*DEVICE_MANAGERS)
def delete_device(device_id: str):
    with db.write_session() as session:
        retire_device(session, device_id)
    audit(g.user, "retire_device", "device", device_id)
    return "", 204


@bp.get("/devices")
@require_role(*DEVICE_READERS)
def list_devices():
    session = db.get_session()
    rows = session.scalars(
        select(Device).where(Device.retired_at.is_(None)).order_by(Device.id)
    ).all()
    return jsonify({"devices": [device_json(d) for d in rows]})


@bp.get("/devices/<device_id>")
@require_role(*DEVICE_READERS)
def show_device(device_id: str):
    device = db.get_session().get(Device, device_id)
    if device is None or device.retired_at is not None:
        return _error(404, "not_found", f"no device {device_id}")
    return jsonify(device_json(device))


@bp.post("/devices/<device_id>/commands")
@require_role("operator", "supervisor", "technician", "admin")
def create_command(device_id: str):
    fields = _json_body()
    if fields is None:
        return _error(400, "malformed_json", "a JSON object is required")
    unknown = set(fields) - {"type", "set"}
    if unknown:
        return _error(400, "unknown_field", f"unknown keys: {', '.join(sorted(unknown))[:200]}")
    command_type = fields.get("type")
    if command_type == "config" and g.user.role not in DEVICE_MANAGERS:
        return _error(403, "forbidden", "only technicians and admins change a configuration")
    with db.write_session() as session:
        command = queue_command(session, device_id, command_type, fields.get("set"), g.user.id)
        answer = {"id": command.id, "type": command.type}
    audit(g.user, "queue_command", "device", device_id, detail=f"{answer['type']} #{answer['id']}")
    return jsonify(answer), 201


# --- alarms -------------------------------------------------------------------------

def _case_json(device: Device) -> dict | None:
    case = device.case
    if case is None:
        return None
    return {"id": case.id, "judicial_ref": case.judicial_ref, "name": case.name,
            "address": case.address, "police_notes": case.police_notes}


@bp.get("/alarms")
@require_role(*CASE_READERS, *DEVICE_MANAGERS)
def list_alarms():
    """Operators and supervisors: alarms with their positions. Technicians and admins:
    only test alarms (`test=only`), without positions, to check a commissioning test."""
    state = request.args.get("state", "open")
    if state not in ("open", "all"):
        return _error(400, "bad_value", "state must be open or all")
    test = request.args.get("test", "any")
    if test not in ("any", "only", "none"):
        return _error(400, "bad_value", "test must be any, only or none")
    police = g.user.role in CASE_READERS
    if not police and test != "only":
        return _error(403, "forbidden", f"role {g.user.role} may list test alarms only (test=only)")
    query = select(Alarm).order_by(Alarm.created_at.desc(), Alarm.id.desc()).limit(MAX_LIST)
    if state == "open":
        query = query.where(Alarm.state != "closed")
    if test != "any":
        query = query.where(Alarm.test.is_(test == "only"))
    device_id = request.args.get("device")
    if device_id:
        query = query.where(Alarm.device_id == device_id)
    session = db.get_session()
    rows = session.scalars(query).all()
    positions = alarms.positions_of(session, [a.id for a in rows]) if police else {}
    result = []
    for alarm in rows:
        item = alarms.alarm_json(alarm)
        item["special_number"] = alarm.device.special_number
        if police:
            item["positions"] = [alarms.position_json(p) for p in positions[alarm.id]]
        result.append(item)
    audit_many(g.user, "view_alarm", "alarm", [alarm.id for alarm in rows], detail="api list")
    if police:
        audit_many(g.user, "view_positions", "alarm",
                   [a.id for a in rows if positions[a.id]], detail="api list")
    return jsonify({"alarms": result})


@bp.get("/alarms/<int:alarm_id>")
@require_role(*CASE_READERS)
def show_alarm(alarm_id: int):
    session = db.get_session()
    alarm = alarms.get_alarm(session, alarm_id)
    item = alarms.alarm_json(alarm)
    item["special_number"] = alarm.device.special_number
    item["case"] = _case_json(alarm.device)
    item["positions"] = [alarms.position_json(p)
                         for p in alarms.positions_of(session, [alarm.id])[alarm.id]]
    item["timeline"] = [alarms.timeline_json(e) for e in alarms.timeline_of(session, alarm.id)]
    audit(g.user, "view_alarm", "alarm", alarm.id, detail="api")
    audit(g.user, "view_positions", "alarm", alarm.id,
          detail=f"api count={len(item['positions'])}")
    if item["case"] is not None:
        audit(g.user, "view_case", "case", item["case"]["id"], detail=f"alarm={alarm.id}")
    return jsonify(item)


@bp.post("/alarms/<int:alarm_id>/ack")
@require_role(*CASE_READERS)
def ack_alarm(alarm_id: int):
    with db.write_session() as session:
        alarm = alarms.acknowledge(session, alarm_id, g.user)
        device = alarm.device
    audit(g.user, "ack_alarm", "alarm", alarm.id)
    alarms.publish_change(alarm, device)
    return jsonify(alarms.alarm_json(alarm))


@bp.post("/alarms/<int:alarm_id>/close")
@require_role(*CASE_READERS)
def close_alarm(alarm_id: int):
    fields = _json_body()
    if fields is None:
        if request.get_data():  # a body that is not a JSON object (none at all is fine)
            return _error(400, "malformed_json", "the body must be a JSON object")
        fields = {}
    unknown = set(fields) - {"note"}
    if unknown:
        return _error(400, "unknown_field", f"unknown keys: {', '.join(sorted(unknown))[:200]}")
    with db.write_session() as session:
        alarm = alarms.close(session, alarm_id, g.user, fields.get("note", ""))
        device = alarm.device
    audit(g.user, "close_alarm", "alarm", alarm.id)
    alarms.publish_change(alarm, device)
    return jsonify(alarms.alarm_json(alarm))
