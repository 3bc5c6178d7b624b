"""Operator lock-out (issue 14 finding 3): twenty wrong passwords for an operator's name
from twenty addresses must not lock the real operator out of the console.

Per-address limits hold for everyone; the per-account lock holds only for unknown
clients: a browser with the "known device" cookie of an earlier login, or an address
the operator logged in from, passes it (OWASP authentication guidance).
"""

from server_testkit import PASSWORD
from server_testkit import csrf_token as _csrf_token
from sqlalchemy import select

from tgd_server import db
from tgd_server.console import login_limit
from tgd_server.models import SecurityLog


def post_login(client, username, password=PASSWORD, ip="10.0.0.1"):
    page = client.get("/connexion", environ_base={"REMOTE_ADDR": ip})
    token = _csrf_token(page.get_data(as_text=True))
    return client.post("/connexion", data={"username": username, "password": password,
                                           "csrf_token": token},
                       environ_base={"REMOTE_ADDR": ip})


def log_out(client):
    token = _csrf_token(client.get("/alarmes").get_data(as_text=True))
    assert client.post("/deconnexion", data={"csrf_token": token}).status_code == 302


def attack(app, username, addresses=20):
    for i in range(addresses):
        attacker = app.test_client()
        assert post_login(attacker, username, "wrong password", ip=f"203.0.113.{i}"
                          ).status_code in (401, 429)


def test_twenty_addresses_do_not_lock_the_operator_out(app, client, make_user):
    user = make_user("operator")
    assert post_login(client, user.username, ip="10.1.0.5").status_code == 302  # her station
    log_out(client)
    attack(app, user.username)
    # An unknown browser at an unknown address: the account lock holds for it.
    stranger = post_login(app.test_client(), user.username, ip="198.51.100.9")
    assert stranger.status_code == 429 and int(stranger.headers["Retry-After"]) > 0
    # A fresh browser at her usual address: in (before: 429).
    assert post_login(app.test_client(), user.username, ip="10.1.0.5").status_code == 302
    attack(app, user.username)
    # Her browser (known-device cookie) from a new address: in (before: 429).
    assert post_login(client, user.username, ip="10.1.0.77").status_code == 302


def test_a_known_browser_passes_its_address_limit_within_its_own(app, client, make_user):
    """Attackers behind the station's address (a NAT) cannot lock its known browsers out;
    a known-device cookie still has a failure limit of its own."""
    user = make_user("operator")
    assert post_login(client, user.username, ip="10.1.0.5").status_code == 302
    log_out(client)
    for i in range(login_limit.MAX_FAILURES):
        post_login(app.test_client(), f"guess{i}", "wrong password", ip="10.1.0.5")
    assert post_login(app.test_client(), user.username, ip="10.1.0.5").status_code == 429
    assert post_login(client, user.username, ip="10.1.0.5").status_code == 302
    log_out(client)
    for _ in range(login_limit.MAX_FAILURES):
        assert post_login(client, user.username, "wrong password", ip="10.3.0.1"
                          ).status_code == 401
    assert post_login(client, user.username, ip="10.3.0.2").status_code == 429


def test_the_attack_is_in_the_security_log_and_on_the_audit_page(app, client, make_user, login):
    victim = make_user("operator")
    attack(app, victim.username)
    post_login(app.test_client(), victim.username, ip="198.51.100.9")
    with app.app_context():
        events = db.get_session().execute(
            select(SecurityLog.event, SecurityLog.detail, SecurityLog.repeats)).all()
    failed = [e for e in events if e[0] == login_limit.EVENT_FAILED]
    assert len(failed) >= login_limit.MAX_FAILURES
    assert all(e[1] == f"user={victim.username}" for e in failed)
    assert sum(e[2] for e in events if e[0] == login_limit.EVENT_ACCOUNT_LOCKED) >= 1
    login("supervisor")
    page = client.get("/audit").get_data(as_text=True)
    assert "Tentatives de connexion échouées" in page
    assert victim.username in page
