"""The operator-lockout attack: twenty wrong passwords for an operator's name, each from
its own browser (and its own address, with --spoof-addresses), then the operator logs
in from her own browser. She must get in; the attempts must never be a 5xx.

With --spoof-addresses the attempts carry X-Forwarded-For (the server must trust one
proxy, TGD_PROXY_COUNT=1, as the test server does); the operator's usual address must
also let a fresh browser in. The probe's account needs a password of its own: the
attack leaves its failures in the security log (that is the point).
"""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request

ATTEMPTS = 20
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    def __init__(self, base_url: str, address: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.address = address
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect())

    def _open(self, request) -> tuple[int, str]:
        if self.address:
            request.add_header("X-Forwarded-For", self.address)
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")

    def login(self, username: str, password: str) -> int:
        _status, page = self._open(urllib.request.Request(self.base_url + "/connexion"))
        found = _CSRF.search(page)
        data = urllib.parse.urlencode({"username": username, "password": password,
                                       "csrf_token": found.group(1) if found else ""}).encode()
        return self._open(urllib.request.Request(self.base_url + "/connexion", data=data))[0]

    def forget_session(self) -> None:
        """Keep only the known-device cookie (a browser restarted the next morning)."""
        for cookie in list(self.jar):
            if cookie.name != "tgd_known_device":
                self.jar.clear(cookie.domain, cookie.path, cookie.name)


def attack(base_url: str, username: str, password: str,
           spoof_addresses: bool) -> tuple[int, list[str], dict]:
    """(requests, violations, statuses)."""
    requests, violations, statuses = 0, [], {}

    def note(status: int, what: str, expected: tuple) -> None:
        nonlocal requests
        requests += 2  # the login page and the form
        statuses[status] = statuses.get(status, 0) + 1
        if status not in expected:
            violations.append(f"lockout: {what} -> {status} (expected {expected})")

    station = "10.77.0.1" if spoof_addresses else None
    operator = Browser(base_url, station)
    note(operator.login(username, password), "the operator's first login", (302,))
    operator.forget_session()
    for i in range(ATTEMPTS):
        attacker = Browser(base_url, f"198.18.{i // 250}.{i % 250 + 1}" if spoof_addresses
                           else None)
        note(attacker.login(username, "wrong password from the probe"), f"attempt {i + 1}",
             (401, 429))
    operator.address = "10.77.0.2" if spoof_addresses else None  # her browser, elsewhere
    note(operator.login(username, password), "the operator, her browser, after the attack",
         (302,))
    if spoof_addresses:
        for i in range(ATTEMPTS):
            note(Browser(base_url, f"198.18.1.{i + 1}").login(username, "wrong again"),
                 f"attempt {ATTEMPTS + i + 1}", (401, 429))
        fresh = Browser(base_url, station)
        note(fresh.login(username, password), "the operator, a new browser at her station",
             (302,))
    return requests, violations, statuses
