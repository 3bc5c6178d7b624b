"""Administration commands: `flask --app tgd_server <command>` (docs/server.md)."""

from __future__ import annotations

import json
import sys

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from . import db, migrate
from .auth import AuthError, create_token, create_user
from .devices import DeviceError, assign_case, new_key_hex, register_device
from .models import ROLES, User
from .retention import purge_positions


def init_app(app) -> None:
    for command in (init_db_command, db_upgrade_command, create_user_command,
                    create_token_command, add_device_command, assign_case_command,
                    import_cells_command, purge_positions_command):
        app.cli.add_command(command)


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create or upgrade the database schema (runs the Alembic migrations)."""
    migrate.upgrade(db.engine())
    click.echo(f"database at revision {migrate.current_revision(db.engine())}")


@click.command("db-upgrade")
@with_appcontext
@click.option("--revision", default="head", show_default=True)
def db_upgrade_command(revision: str) -> None:
    """Run the Alembic migrations up to REVISION."""
    migrate.upgrade(db.engine(), revision)
    click.echo(f"database at revision {migrate.current_revision(db.engine())}")


def _new_password(password: str | None, from_stdin: bool) -> str:
    """--password, else one line of stdin (--password-stdin), else asked twice on the terminal."""
    if password is not None and from_stdin:
        _fail("give the password with --password or with --password-stdin, not both")
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            _fail("--password-stdin read an empty line: pipe the password in, e.g. "
                  "`cat secret | tgd-server admin create-user NAME --role ROLE --password-stdin`")
        return password
    if password is not None:
        return password
    if not sys.stdin.isatty():
        _fail("no terminal to ask the password on: pipe it in with --password-stdin "
              "(or give --password, which lands in the shell history)")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@click.command("create-user")
@with_appcontext
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--name", "display_name", default="")
@click.option("--password", default=None,
              help="the password (asked on the terminal when omitted; better: --password-stdin)")
@click.option("--password-stdin", "password_stdin", is_flag=True,
              help="read the password from the first line of stdin")
def create_user_command(username: str, role: str, display_name: str, password: str | None,
                        password_stdin: bool) -> None:
    """Create a user (operator, supervisor, technician or admin)."""
    password = _new_password(password, password_stdin)
    with db.write_session() as session:
        try:
            create_user(session, username, role, password, display_name)
        except AuthError as exc:
            _fail(str(exc))
    click.echo(f"user {username} ({role}) created")


@click.command("create-token")
@with_appcontext
@click.argument("username")
@click.option("--name", default="", help="what the token is for")
def create_token_command(username: str, name: str) -> None:
    """Create an API token for USERNAME; it is printed once and never stored in clear."""
    with db.write_session() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            _fail(f"no user {username}")
        token = create_token(session, user, name)
    click.echo(token)


@click.command("add-device")
@with_appcontext
@click.argument("device_id")
@click.option("--special-number", required=True, help="caller id the police sees")
@click.option("--imei", default="")
@click.option("--iccid", default="")
@click.option("--fw-version", default="")
@click.option("--key", default=None, help="64 hex digits; generated and printed if absent")
def add_device_command(device_id, special_number, imei, iccid, fw_version, key) -> None:
    """Register a handset."""
    generated = key is None
    key = key or new_key_hex()
    with db.write_session() as session:
        try:
            register_device(session, {"device_id": device_id, "special_number": special_number,
                                      "imei": imei, "iccid": iccid, "fw_version": fw_version,
                                      "key": key})
        except DeviceError as exc:
            _fail(exc.detail)
    click.echo(f"device {device_id} registered")
    if generated:
        click.echo(f"key {key}")


@click.command("assign-case")
@with_appcontext
@click.argument("device_id")
@click.option("--ref", "judicial_ref", required=True, help="judicial reference")
@click.option("--name", required=True, help="the protected person's name")
@click.option("--address", default="")
@click.option("--address-position", default="", metavar="LAT,LON",
              help="where the address is, e.g. -22.2631,166.4502 (marked on the console's map)")
@click.option("--notes", default="", help="notes for the police")
def assign_case_command(device_id, judicial_ref, name, address, address_position, notes) -> None:
    """Assign a handset to a protected person's case (created or updated)."""
    position = None
    if address_position:
        try:
            lat, lon = (float(part) for part in address_position.split(","))
            position = (lat, lon)
        except ValueError:
            _fail(f"--address-position {address_position!r}: give LAT,LON in decimal degrees, "
                  f"e.g. --address-position=-22.2631,166.4502")
    with db.write_session() as session:
        try:
            case = assign_case(session, device_id, judicial_ref, name, address, notes,
                               address_position=position)
        except DeviceError as exc:
            _fail(exc.detail)
        case_id = case.id
    click.echo(f"device {device_id} assigned to case {judicial_ref} (#{case_id})")


@click.command("import-cells")
@with_appcontext
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def import_cells_command(path: str) -> None:
    """Import an OpenCelliD-layout CSV (plain or .gz) into the cell table."""
    from . import cells

    with db.write_session() as session:
        report = cells.import_csv(session, path)
    summary = getattr(report, "summary", None)
    click.echo(summary() if callable(summary) else str(report))


@click.command("purge-positions")
@with_appcontext
@click.option("--days", type=int, default=None,
              help="keep this many days (default TGD_POSITION_RETENTION_DAYS)")
def purge_positions_command(days: int | None) -> None:
    """Delete positions older than the retention period."""
    days = days or current_app.config["TGD_POSITION_RETENTION_DAYS"]
    if days < 1:
        _fail("--days must be at least 1")
    with db.write_session() as session:
        counts = purge_positions(session, days)
    click.echo(json.dumps(counts))
