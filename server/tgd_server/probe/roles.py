"""The role matrix: what each role may do through the API (docs/server.md "Roles").

Every cell is checked: an allowed request must not be 401/403, a forbidden one must be
403 (401 without a token). Only reads and harmless requests are sent as "allowed"; a
forbidden write is sent for real and must change nothing.
"""

from __future__ import annotations

from .http import Client

ROLES = ("operator", "supervisor", "technician", "admin")


def matrix(device_id: str, alarm_id: int | None) -> list[tuple[str, str, dict | None, set]]:
    """(method, path, JSON body, roles allowed)."""
    alarm = alarm_id if alarm_id is not None else 2147483647
    return [
        ("GET", "/api/v1/alarms", None, {"operator", "supervisor"}),
        ("GET", "/api/v1/alarms?test=only", None, set(ROLES)),
        ("GET", f"/api/v1/alarms/{alarm}", None, {"operator", "supervisor"}),
        ("GET", "/api/v1/devices", None, {"supervisor", "technician", "admin"}),
        ("GET", f"/api/v1/devices/{device_id}", None, {"supervisor", "technician", "admin"}),
        ("POST", "/api/v1/devices", {"device_id": "x"}, {"technician", "admin"}),  # 400: harmless
        ("DELETE", "/api/v1/devices/PROBE-NO-SUCH-DEVICE", None, {"technician", "admin"}),
        ("POST", f"/api/v1/devices/{device_id}/commands",
         {"type": "config", "set": {"heartbeat_interval_s": 0}}, {"technician", "admin"}),  # 400
        ("POST", f"/api/v1/alarms/{2147483647}/ack", None, {"operator", "supervisor"}),  # 404
        ("POST", f"/api/v1/alarms/{2147483647}/close", {"note": "probe"},
         {"operator", "supervisor"}),  # 404
    ]


# Requests that once gave a 500 (issue 14): each must be a 4xx JSON error, for every role.
JUNK = [
    ("GET", "/api/v1/alarms/99999999999999999999999"),
    ("POST", "/api/v1/alarms/2147483648/ack"),
    ("GET", "/api/v1/alarms/true"),
    ("GET", "/api/v1/devices/NC%00X"),
    ("GET", "/api/v1/alarms?device=NC%00X"),
    ("PUT", "/api/v1/alarms"),
]


def check_junk(base_url: str, tokens: dict[str, str]) -> tuple[int, list[str], dict]:
    """(requests, violations, statuses)."""
    client = Client(base_url)
    requests, violations, statuses = 0, [], {}
    try:
        for method, path in JUNK:
            for role, token in sorted(tokens.items()):
                status, headers, body = client.request(
                    method, path, None, {"Authorization": f"Bearer {token}"})
                requests += 1
                statuses[status] = statuses.get(status, 0) + 1
                json_error = (headers.get("content-type", "").startswith("application/json")
                              and b'"ok":false' in body.replace(b" ", b""))
                if not 400 <= status < 500 or not json_error:
                    violations.append(f"junk ({role}): {method} {path} -> {status} "
                                      f"{headers.get('content-type', '')}")
    finally:
        client.close()
    return requests, violations, statuses


def check(base_url: str, tokens: dict[str, str], device_id: str,
          alarm_id: int | None = None) -> tuple[int, list[str], dict]:
    """(requests, violations, statuses)."""
    client = Client(base_url)
    requests, violations, statuses = 0, [], {}
    try:
        for method, path, body, allowed in matrix(device_id, alarm_id):
            for role in (None, *ROLES):
                if role is not None and role not in tokens:
                    continue
                headers = {"Authorization": f"Bearer {tokens[role]}"} if role else {}
                status, _answer = client.json(method, path, body, headers)
                requests += 1
                statuses[status] = statuses.get(status, 0) + 1
                if role is None:
                    ok = status == 401
                elif role in allowed:
                    ok = status not in (401, 403) and status < 500
                else:
                    ok = status == 403
                if not ok:
                    violations.append(f"role {role or 'none'}: {method} {path} -> {status}")
    finally:
        client.close()
    return requests, violations, statuses
