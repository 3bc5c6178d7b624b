"""The server's device-management API (docs/interfaces.md §5), for technicians.

POST /api/v1/devices registers a handset; DELETE /api/v1/devices/<id> undoes
it. Every failure becomes a typed error that says what to do.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from .errors import AlreadyRegistered, ServerError, ServerUnreachable, TokenRefused

DEVICE_MESSAGES_PATH = "/api/v1/device/messages"


@dataclass(frozen=True)
class ServerTarget:
    base_url: str  # e.g. http://127.0.0.1:8080
    token: str
    timeout_s: float = 15.0  # per request

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    @property
    def device_messages_url(self) -> str:
        return self.url(DEVICE_MESSAGES_PATH)


def _request(target: ServerTarget, method: str, path: str, body: dict | None = None):
    """(HTTP status, JSON answer); an answer that is not the API's JSON is refused here."""
    status, raw = _exchange(target, method, path, body)
    answer = _json(raw)
    if answer is None:
        raise ServerError(
            f"{target.base_url} answered {method} {path} with HTTP {status} and a web page, not "
            "the TGD API: check --server (the server's base URL, e.g. https://tgd.opt.nc, "
            "without /api/...)"
        )
    return status, answer


def _exchange(target: ServerTarget, method: str, path: str, body: dict | None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(target.url(path), data=data, method=method)
    req.add_header("Authorization", f"Bearer {target.token}")
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=target.timeout_s) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServerUnreachable(
            f"cannot reach the server at {target.base_url}: {reason}; check the URL and the network"
        ) from exc


def _json(raw: bytes) -> dict | None:
    """The answer as a dict ({} for an empty body); None when it is not JSON (an HTML page)."""
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return None
    return value if isinstance(value, dict) else {"detail": value}


def _not_the_api(target: ServerTarget, method: str, path: str, status: int) -> ServerError:
    return ServerError(
        f"{target.base_url} has no TGD API at {path} ({method}: HTTP {status}): check --server "
        "(the server's base URL, e.g. https://tgd.opt.nc, without /api/...)"
    )


def _refused(target: ServerTarget, status: int, answer: dict) -> None:
    if status in (401, 403):
        raise TokenRefused(
            f"the server refused the technician token (HTTP {status}): ask an administrator "
            "for a valid token of a technician account (tgd-server admin create-token USER)"
        )


def already_registered(device_id: str) -> AlreadyRegistered:
    return AlreadyRegistered(
        f"device id {device_id} is already registered on the server: choose another id, "
        "or have the old registration removed first (nothing was written to the handset)"
    )


def register_device(target: ServerTarget, record: dict) -> dict:
    """Register one handset. ``record`` holds device_id, special_number, imei, iccid, key, fw_version."""
    status, answer = _request(target, "POST", "/api/v1/devices", record)
    if status in (200, 201):
        return answer
    _refused(target, status, answer)
    if status == 409 and answer.get("error") == "number_in_use":
        raise AlreadyRegistered(
            f"special number {record['special_number']} is already used by another device "
            f"({answer.get('detail', '')}): check the SIM's number (nothing was written to the handset)"
        )
    if status == 409:
        raise already_registered(record["device_id"])
    if status in (404, 405):
        raise _not_the_api(target, "POST", "/api/v1/devices", status)
    detail = answer.get("detail") or answer.get("error") or answer
    raise ServerError(f"the server refused the registration (HTTP {status}): {detail}")


def delete_device(target: ServerTarget, device_id: str) -> None:
    """Undo a registration (used when writing the handset failed)."""
    quoted = urllib.parse.quote(device_id, safe="")
    status, answer = _request(target, "DELETE", f"/api/v1/devices/{quoted}")
    if status in (200, 204, 404):
        return
    _refused(target, status, answer)
    raise ServerError(f"the server refused to delete {device_id} (HTTP {status}): {answer}")


def get_device(target: ServerTarget, device_id: str) -> dict | None:
    quoted = urllib.parse.quote(device_id, safe="")
    status, answer = _request(target, "GET", f"/api/v1/devices/{quoted}")
    if status == 404 and answer.get("error") == "not_found":
        return None  # the API's own answer: no such device
    if status in (404, 405):
        raise _not_the_api(target, "GET", f"/api/v1/devices/{quoted}", status)
    if status == 200:
        return answer
    _refused(target, status, answer)
    raise ServerError(f"the server answered HTTP {status} for device {device_id}: {answer}")


def get_alarms(target: ServerTarget, device_id: str) -> list:
    query = urllib.parse.urlencode({"state": "all", "device": device_id})
    status, answer = _request(target, "GET", f"/api/v1/alarms?{query}")
    if status != 200:
        _refused(target, status, answer)
        raise ServerError(f"the server answered HTTP {status} listing alarms: {answer}")
    if isinstance(answer, dict):
        for key in ("alarms", "items", "data"):
            if isinstance(answer.get(key), list):
                return answer[key]
    return answer if isinstance(answer, list) else []


def upload_release(target: ServerTarget, data: bytes) -> dict:
    """POST /api/v1/releases: the server verifies the release with its trusted public keys."""
    req = urllib.request.Request(target.url("/api/v1/releases"), data=data, method="POST")
    req.add_header("Authorization", f"Bearer {target.token}")
    req.add_header("Accept", "application/json")
    req.add_header("Content-Type", "application/octet-stream")
    try:
        with urllib.request.urlopen(req, timeout=max(target.timeout_s, 60)) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise ServerUnreachable(f"cannot reach the server at {target.base_url}: "
                                f"{getattr(exc, 'reason', exc)}; check the URL and the network") from exc
    answer = _json(raw)
    if answer is None:
        raise _not_the_api(target, "POST", "/api/v1/releases", status)
    if status == 201:
        return answer
    if status == 401:
        raise TokenRefused("the server refused the token: check --token-file (or $TGD_TECH_TOKEN)")
    if status == 403:
        raise TokenRefused("this token's account may not upload releases (technician or admin only)")
    detail = str(answer.get("detail") or answer)[:300]
    raise ServerError(f"the server refused the release (HTTP {status}): {detail}")
