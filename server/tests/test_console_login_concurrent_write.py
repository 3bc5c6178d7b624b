"""Found by the HIL campaign (i12-campaign, `operator_close` through the console): a console
login fails with HTTP 500 "database is locked" on SQLite when a device message is written
while the login runs.

The login view reads the user in a deferred (read) transaction and then writes
`last_login_at` in that same transaction; in WAL mode, when another connection has
committed in between (the ingest storing a handset's message), SQLite refuses the
upgrade at once (SQLITE_BUSY_SNAPSHOT: the busy timeout does not help). Made
deterministic here: the other write happens inside the login, right after the password
check, as it did by chance in the campaign (traceback at views.py `session.commit()`).

Fixed by the server's single write mechanism: the login only reads in the request's
session and records itself through db.write_session (BEGIN IMMEDIATE on SQLite).
"""

from __future__ import annotations

import sqlite3

import pytest
from server_testkit import PASSWORD
from server_testkit import csrf_token as _csrf_token

from tgd_server.console import views


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_console_login_survives_a_device_write_in_the_middle(app, client, make_user, monkeypatch,
                                                             database_url):
    user = make_user("operator")
    someone_else = make_user("operator")
    real = views.verify_password
    path = database_url.removeprefix("sqlite:///")

    def verify_while_a_device_writes(known, password):
        found = real(known, password)
        other = sqlite3.connect(path, timeout=5)     # another connection commits a write
        other.execute("UPDATE users SET display_name = 'x' WHERE id = ?", (someone_else.id,))
        other.commit()
        other.close()
        return found

    monkeypatch.setattr(views, "verify_password", verify_while_a_device_writes)
    token = _csrf_token(client.get("/connexion").get_data(as_text=True))
    response = client.post("/connexion", data={"username": user.username, "password": PASSWORD,
                                               "csrf_token": token})
    assert response.status_code == 302, response.status_code
