"""REST API of over-the-air updates (issue 17, docs/openapi.yaml, docs/protocol.md).

    POST /api/v1/releases               upload a signed .tgdrel (technician, admin)
    GET  /api/v1/releases               the releases on the server
    GET  /api/v1/fw/<version>/bundle    the bundle, Range-able (no device signature: the
                                        bundle is public and signed)
    POST /api/v1/rollouts               start a roll-out (technician, admin)
    GET  /api/v1/rollouts/current       its state
    POST /api/v1/rollouts/current/pause | resume
"""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, request
from sqlalchemy import select

from . import db, ota
from .auth import DEVICE_MANAGERS, audit, require_role
from .models import Release

bp = Blueprint("ota_api", __name__, url_prefix="/api/v1")


def _error(status: int, code: str, detail: str):
    response = jsonify({"ok": False, "error": code, "detail": detail})
    response.status_code = status
    return response


@bp.errorhandler(ota.OtaError)
def _ota_error(exc: ota.OtaError):
    db.get_session().rollback()
    return _error(exc.status, exc.code, exc.detail)


@bp.post("/releases")
@require_role(*DEVICE_MANAGERS)
def upload_release():
    data = request.get_data(cache=False)  # Flask refuses more than MAX_CONTENT_LENGTH (1 MiB)
    try:
        with db.write_session() as session:
            row = ota.store_release(session, data, ota.release_pubs(), g.user)
            session.flush()
            answer = ota.release_json(row)
    except ota.OtaError as exc:
        audit(g.user, "release_refused", "release", "-", detail=exc.detail[:300])
        raise
    audit(g.user, "release_upload", "release", answer["version"],
          detail=f"sha256 {answer['sha256']}, {answer['size']} bytes, key {answer['key']}")
    return jsonify(answer), 201


@bp.get("/releases")
@require_role(*DEVICE_MANAGERS)
def list_releases():
    rows = db.get_session().scalars(select(Release).order_by(Release.uploaded_at)).all()
    return jsonify({"releases": [ota.release_json(r) for r in rows]})


@bp.get("/fw/<version>/bundle")
def bundle(version: str):
    release = db.get_session().get(Release, version[:32])
    if release is None:
        return _error(404, "not_found", f"no release {version[:32]!r}")
    data = release.bundle
    span = ota.parse_range(request.headers.get("Range"), len(data))
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{release.sha256}"',
               "Cache-Control": "public, max-age=86400"}
    if span is None:
        return Response(data, 200, headers, mimetype="application/octet-stream")
    first, last = span
    headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
    return Response(data[first:last + 1], 206, headers, mimetype="application/octet-stream")


@bp.post("/rollouts")
@require_role(*DEVICE_MANAGERS)
def start_rollout():
    fields = request.get_json(silent=True)
    if not isinstance(fields, dict):
        return _error(400, "malformed_json", "a JSON object is required")
    with db.write_session() as session:
        row = ota.start(session, fields, g.user)
        session.flush()
        rollout_id = row.id
    with db.write_session() as session:
        body = ota.status(session)
    return jsonify(body | {"id": rollout_id}), 201


@bp.get("/rollouts/current")
@require_role(*DEVICE_MANAGERS)
def show_rollout():
    with db.write_session() as session:  # its clock may move it (a canary's time limit)
        body = ota.status(session)
    if body is None:
        return _error(404, "no_rollout", "no roll-out is under way")
    return jsonify(body)


@bp.post("/rollouts/current/pause")
@require_role(*DEVICE_MANAGERS)
def pause_rollout():
    return _rollout_action(ota.pause)


@bp.post("/rollouts/current/resume")
@require_role(*DEVICE_MANAGERS)
def resume_rollout():
    return _rollout_action(ota.resume)


def _rollout_action(action):
    """Pause or resume, and answer the roll-out's status as committed with it."""
    with db.write_session() as session:
        action(session, g.user)
        body = ota.status(session)
    return jsonify(body)
