"""`tgd-server probe`: run the security probe against a deployment (see __init__.py)."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time

from ..cli import subcommand

PARTS = ("hostile", "flood", "roles", "lockout", "schema")
ROLES = ("operator", "supervisor", "technician", "admin")
# Tables a rejected request must never write to (the security and audit logs aside).
GUARDED_TABLES = ("device_messages", "positions", "alarms", "alarm_events", "commands",
                  "devices", "cases", "users", "api_tokens", "inbound_sms")


class ProbeError(Exception):
    """A mistake in the command line or the set-up: one line, exit 2."""


@subcommand("probe", help="security probe of a deployment: hostile device messages, flood "
                          "ratio, role matrix, operator lockout, schemathesis (docs/server.md)")
def _configure(parser: argparse.ArgumentParser):
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="the server, e.g. https://tgd.example.nc")
    target.add_argument("--local", metavar="sqlite|postgresql[=URL]",
                        help="start a test server (gunicorn) on a fresh database and probe "
                             "it, with its own accounts and tokens (CI, docs/benchmarks.md)")
    for role in ROLES:
        parser.add_argument(f"--token-{role}", metavar="TOKEN",
                            default=os.environ.get(f"TGD_PROBE_TOKEN_{role.upper()}"),
                            help=f"API token of a {role} (or TGD_PROBE_TOKEN_{role.upper()})")
    parser.add_argument("--login-user", help="an operator account for the lockout attack")
    parser.add_argument("--login-password", default=os.environ.get("TGD_PROBE_LOGIN_PASSWORD"),
                        help="its password (or TGD_PROBE_LOGIN_PASSWORD)")
    parser.add_argument("--spoof-addresses", action="store_true",
                        help="send each attempt from its own X-Forwarded-For address (the "
                             "server must trust one proxy: TGD_PROXY_COUNT=1)")
    parser.add_argument("--database-url", default=os.environ.get("TGD_PROBE_DATABASE_URL"),
                        help="count the rows written by rejected requests in this database")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="length of each flood phase (quiet, then flooded)")
    parser.add_argument("--senders", type=int, default=4, help="valid handsets in the flood")
    parser.add_argument("--flooders", type=int, default=4, help="hostile senders in the flood")
    parser.add_argument("--examples", type=int, default=25,
                        help="schemathesis examples per operation and mode")
    parser.add_argument("--load", type=float, default=0.5,
                        help="the valid handsets' pace as a fraction of the measured capacity")
    parser.add_argument("--min-ratio", type=float, default=0.0,
                        help="fail when the flood ratio is below this (target 0.8)")
    parser.add_argument("--skip", action="append", default=[], choices=PARTS,
                        help="leave a part out (repeatable)")

    def run(args: argparse.Namespace) -> int:
        try:
            if args.local:
                return probe_local(args)
            return probe(args)
        except ProbeError as exc:
            print(f"tgd-server probe: {exc}", file=sys.stderr)
            return 2

    return run


def probe_local(args: argparse.Namespace) -> int:
    from .local import test_server

    if args.url or any(getattr(args, f"token_{role}") for role in ROLES):
        raise ProbeError("--local makes its own server and tokens: leave out --url and --token-*")
    try:
        with test_server(args.local) as (url, database_url, arguments):
            args.url, args.database_url, args.spoof_addresses = url, database_url, True
            for name, value in arguments.items():
                setattr(args, name, value)
            return probe(args)
    except (ValueError, RuntimeError) as exc:
        raise ProbeError(str(exc)) from None


def _tokens(args) -> dict[str, str]:
    return {role: getattr(args, f"token_{role}") for role in ROLES
            if getattr(args, f"token_{role}")}


def _check_arguments(args, tokens: dict) -> None:
    if not args.url.startswith(("http://", "https://")):
        raise ProbeError(f"--url must start with http:// or https://, got {args.url!r}")
    if "technician" not in tokens:
        raise ProbeError("--token-technician is required: the probe registers its own handsets "
                         "(create one with `tgd-server admin create-token USER`)")
    if "lockout" not in args.skip and not (args.login_user and args.login_password):
        raise ProbeError("--login-user and --login-password are needed for the lockout attack "
                         "(or --skip lockout)")
    if args.seconds <= 0 or args.senders < 1 or args.flooders < 1 or args.examples < 1:
        raise ProbeError("--seconds, --senders, --flooders and --examples must be positive")
    if not 0 < args.load <= 1:
        raise ProbeError(f"--load is a fraction of the capacity in (0, 1], got {args.load}")


def _register(client, token: str, count: int):
    from .hostile import ProbeDevice

    run_id = secrets.token_hex(3).upper()
    devices = []
    for n in range(count):
        device = ProbeDevice(f"PROBE-{run_id}-{n}", secrets.token_hex(32))
        number = "+68799" + "".join(secrets.choice("0123456789") for _ in range(6))
        status, answer = client.json("POST", "/api/v1/devices", {
            "device_id": device.device_id, "special_number": number, "key": device.key_hex,
            "fw_version": "probe"}, {"Authorization": f"Bearer {token}"})
        if status != 201:
            raise ProbeError(f"could not register probe handset {device.device_id}: "
                             f"{status} {answer}")
        devices.append(device)
    return devices


def _row_counts(database_url: str | None) -> dict | None:
    if not database_url:
        return None
    from sqlalchemy import text

    from .. import db

    engine = db.make_engine(database_url)
    try:
        with engine.connect() as connection:
            return {table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                    for table in GUARDED_TABLES}
    finally:
        engine.dispose()


def probe(args: argparse.Namespace) -> int:
    from . import flood, hostile, lockout, roles
    from .http import Client

    tokens = _tokens(args)
    _check_arguments(args, tokens)
    base_url = args.url.rstrip("/")
    client = Client(base_url)
    tech = {"Authorization": f"Bearer {tokens['technician']}"}
    try:
        client.request("GET", "/connexion")
    except OSError as exc:
        raise ProbeError(f"cannot reach {base_url}: {exc}") from None
    devices = _register(client, tokens["technician"], args.senders + 1)
    target, senders = devices[0], devices[1:]
    totals = {"requests": 0, "5xx": 0}
    violations: list[str] = []
    lines: list[str] = []

    def add_statuses(statuses: dict) -> None:
        totals["requests"] += sum(statuses.values())
        totals["5xx"] += sum(n for status, n in statuses.items() if status >= 500)

    before = _row_counts(args.database_url)
    valid_accepted = 0
    started = time.monotonic()
    try:
        cases = hostile.cases(target, host=client.host)
        if "hostile" not in args.skip:
            accepted, replayed = hostile.replays(target, client)
            valid_accepted += accepted
            statuses: dict = {}
            for case in cases + replayed:
                status = flood.send_case(client, base_url, case)
                statuses[status] = statuses.get(status, 0) + 1
                if status >= 500 or status == 200 or status <= 0:
                    violations.append(f"hostile: {case.name} -> {status or 'no answer'}")
            add_statuses(statuses)
            lines.append(f"hostile  requests {sum(statuses.values())}, 5xx "
                         f"{sum(n for s, n in statuses.items() if s >= 500)}, accepted "
                         f"{statuses.get(200, 0)}, statuses {dict(sorted(statuses.items()))}")
        ratio = None
        if "flood" not in args.skip:
            result = flood.measure(base_url, senders, cases, args.flooders, args.seconds,
                                   args.load)
            valid_accepted += result.valid_accepted
            add_statuses(result.statuses)
            ratio = result.ratio
            quiet, flooded = result.quiet, result.flood
            lines.append(
                f"flood    capacity {result.capacity.rate:.0f} msg/s; paced at "
                f"{result.offered:.0f} msg/s: quiet {quiet.rate:.0f} msg/s (p50 "
                f"{quiet.p50_ms:.0f} ms, p99 {quiet.p99_ms:.0f} ms), during the flood "
                f"{flooded.rate:.0f} msg/s (p50 {flooded.p50_ms:.0f} ms, p99 "
                f"{flooded.p99_ms:.0f} ms) with {flooded.hostile / args.seconds:.0f} hostile "
                f"req/s: ratio {ratio:.2f}")
            for status, body in result.valid_refused:
                violations.append(f"flood: a valid message was answered {status}: {body!r}")
            for name in result.hostile_accepted:
                violations.append(f"flood: hostile case accepted: {name}")
            if ratio < args.min_ratio:
                violations.append(f"flood: ratio {ratio:.2f} under --min-ratio {args.min_ratio}")
        if "roles" not in args.skip:
            count, found, statuses = roles.check(base_url, tokens, target.device_id)
            junk_count, junk_found, junk_statuses = roles.check_junk(base_url, tokens)
            add_statuses(statuses)
            add_statuses(junk_statuses)
            violations += found + junk_found
            lines.append(f"roles    requests {count}, violations {len(found)} "
                         f"({len(tokens)} roles with a token); junk URLs {junk_count}, "
                         f"violations {len(junk_found)}")
        if "lockout" not in args.skip:
            count, found, statuses = lockout.attack(base_url, args.login_user,
                                                    args.login_password, args.spoof_addresses)
            add_statuses(statuses)
            violations += found
            lines.append(f"lockout  requests {count}, violations {len(found)} "
                         f"(addresses {'spoofed' if args.spoof_addresses else 'one'})")
        # Before schemathesis, whose valid requests may write.
        after = _row_counts(args.database_url)
        if before is not None:
            written = {t: after[t] - before[t] for t in GUARDED_TABLES}
            written["device_messages"] -= valid_accepted
            extra = {t: n for t, n in written.items() if n}
            lines.append(f"rows     written by rejected requests: {sum(extra.values())} "
                         f"({valid_accepted} valid messages stored)")
            totals["rows"] = sum(extra.values())
            if extra:
                violations.append(f"rows written by rejected requests: {extra}")
        else:
            lines.append("rows     not counted (no --database-url)")
        if "schema" not in args.skip:
            from . import schema

            try:
                result = schema.run(base_url, tokens, args.examples)
            except schema.SchemathesisMissing as exc:
                raise ProbeError(f"schemathesis is not installed ({exc}): "
                                 "pip install -e '.[dev]', or --skip schema") from None
            add_statuses(result.statuses)
            violations += [f"schema: {v}" for v in result.violations]
            lines.append(f"schema   requests {result.requests}, 5xx {result.server_errors}, "
                         f"violations {len(result.violations)}")
    finally:
        for device in devices:
            client.request("DELETE", f"/api/v1/devices/{device.device_id}", headers=tech)
        client.close()
    print(f"tgd-server probe {base_url} ({time.monotonic() - started:.0f} s)")
    for line in lines:
        print("  " + line)
    for violation in violations:
        print("  VIOLATION " + violation)
    summary = (f"requests {totals['requests']}, 5xx {totals['5xx']}, rows written by rejected "
               f"requests {totals.get('rows', 'not counted')}, flood ratio "
               f"{'-' if ratio is None else f'{ratio:.2f}'}, violations {len(violations)}")
    print(("FAIL " if violations else "OK ") + summary)
    return 1 if violations else 0
