"""`flask --app tgd_server ...` admin commands and the `tgd-server` console script."""

import secrets

import pytest
from dbcheck import count
from sqlalchemy import select

from tgd_server import cli, create_app, db
from tgd_server.models import ApiToken, Case, Device, User


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def test_admin_commands_end_to_end(tmp_path):
    app = create_app({"TGD_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
                      "TGD_VAR_DIR": str(tmp_path), "SECRET_KEY": "x"})
    runner, client = app.test_cli_runner(), app.test_client()
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0 and "database at revision " in result.output
    result = runner.invoke(args=["create-user", "marie", "--role", "operator",
                                 "--password", "un mot de passe long"])
    assert result.exit_code == 0, result.output
    token = runner.invoke(args=["create-token", "marie", "--name", "script"]).output.strip()
    assert token.startswith("tgd_")
    with app.app_context():
        assert db.get_session().scalar(select(ApiToken.token_hash)) != token
    result = runner.invoke(args=["add-device", "NC0007", "--special-number", "+687751007"])
    assert result.exit_code == 0 and "key " in result.output
    result = runner.invoke(args=["assign-case", "NC0007", "--ref", "TJ-7", "--name", "Mme Sept"])
    assert result.exit_code == 0, result.output
    assert count(app, Device) == 1 and count(app, Case) == 1 and count(app, User) == 1
    answer = client.get("/api/v1/alarms", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("args, message", [
    (["create-user", "x", "--role", "operator", "--password", "short"], "10 characters"),
    (["create-token", "nobody"], "no user"),
    (["add-device", "bad id", "--special-number", "+6871"], "device_id"),
    (["assign-case", "NC404", "--ref", "r", "--name", "n"], "no device"),
])
def test_admin_commands_refuse_bad_input(app, runner, args, message):
    result = runner.invoke(args=args)
    assert result.exit_code == 1 and message in result.output


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_add_device_with_a_given_key_does_not_print_it(app, runner):
    key = secrets.token_hex(32)
    result = runner.invoke(args=["add-device", "NC0008", "--special-number", "+687751008",
                                 "--key", key])
    assert result.exit_code == 0 and key not in result.output


def test_console_script_has_its_subcommands():
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert {"run", "admin", "bench"} <= set(commands)
    args = parser.parse_args(["run", "--port", "9999"])
    assert args.port == 9999 and callable(args._run)


def test_a_new_subcommand_registers_itself():
    @cli.subcommand("hello-test", help="test only")
    def configure(parser):
        parser.add_argument("--name", default="x")
        return lambda args: 7 if args.name == "y" else 0

    try:
        assert cli.main(["hello-test", "--name", "y"]) == 7
    finally:
        cli._REGISTRY.pop("hello-test")
