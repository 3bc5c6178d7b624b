"""`tgd-server release` and `tgd-server rollout`: over-the-air updates from the server's shell
(docs/technician.md). They act on the server's database (TGD_DATABASE_URL) as the REST API
does, with the same checks, and are audited under the name `cli:<login>`.

    tgd-server release add tgd-1.1.0.tgdrel
    tgd-server release list
    tgd-server rollout start --version 1.1.0 --canary NC0001 [--stages 34,100] [--canary-timeout-s 3600]
    tgd-server rollout status | pause | resume
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from .cli import subcommand


def _error(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _app():
    from . import create_app

    return create_app()


@subcommand("release", help="add a signed over-the-air release (.tgdrel) to the server, or list them")
def _configure_release(parser: argparse.ArgumentParser):
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="verify a .tgdrel with TGD_RELEASE_PUBS and store it")
    add.add_argument("file", type=Path)
    sub.add_parser("list", help="the releases on the server and the trusted release keys")
    trust = sub.add_parser("trust", help="accept releases signed by this public key (release.pub)")
    trust.add_argument("pub", type=Path)
    distrust = sub.add_parser("distrust", help="stop accepting releases signed by this key")
    distrust.add_argument("pub", type=Path)

    def run(args: argparse.Namespace) -> int:
        from sqlalchemy import select

        from tgd_flash import release_sign

        from . import db, ota
        from .models import AuditLog, Release

        app = _app()
        with app.app_context():
            if args.action in ("trust", "distrust"):
                return _trust(args, app)
            if args.action == "list":
                for key in ota.release_pubs():
                    print(f"trusted release key {release_sign.key_id(key)}  {key.hex()}")
                for row in db.get_session().scalars(select(Release).order_by(Release.uploaded_at)):
                    info = ota.release_json(row)
                    print(f"{info['version']}  route {info['route']}  {info['size']} bytes  sha256 {info['sha256'][:16]}...  "
                          f"key {info['key']}  min {info['min']}")
                return 0
            try:
                data = args.file.read_bytes()
            except OSError as exc:
                return _error(f"{args.file}: cannot read it ({exc.strerror}); give the .tgdrel "
                              "that `tgd-flash release` wrote")
            try:
                with db.write_session() as session:
                    row = ota.store_release(session, data, ota.release_pubs(), None)
                    info = ota.release_json(row)
                    session.add(AuditLog(username=_actor(), action="release_upload",
                                         object_type="release", object_id=info["version"],
                                         detail=f"sha256 {info['sha256']}, {info['size']} bytes, "
                                                f"key {info['key']}"))
            except ota.OtaError as exc:
                return _error(f"{args.file}: refused: {exc.detail}", 3)
        print(f"release {info['version']} stored (route {info['route']}, {info['size']} bytes, "
              f"key {info['key']}); "
              f"handsets download it from {info['url']}")
        return 0

    return run


def _trust(args: argparse.Namespace, app) -> int:
    from tgd_flash import release_file, release_sign

    from . import db, ota
    from .models import AuditLog

    if args.pub.suffix == ".key":
        return _error(f"{args.pub}: that is the PRIVATE key; it never goes on the server. Give "
                      "release.pub (and take the private key back offline)")
    try:
        key = release_file.parse_pub_hex(args.pub.read_text())
    except OSError as exc:
        return _error(f"{args.pub}: cannot read it ({exc.strerror}); give the release.pub that "
                      "`tgd-flash release-key` wrote")
    except ValueError:
        return _error(f"{args.pub}: not a release public key (64 hex digits)")
    path = ota.trusted_file(app.config)
    lines = [ln.strip() for ln in path.read_text().splitlines()] if path.exists() else []
    lines = [ln for ln in lines if ln and ln.lower() != key.hex()]
    if args.action == "trust":
        lines.append(key.hex())
    elif key.hex() in (app.config.get("TGD_RELEASE_PUBS") or "").lower():
        return _error(f"key {release_sign.key_id(key)} comes from TGD_RELEASE_PUBS: remove it there")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{ln}\n" for ln in lines))
    with db.write_session() as session:
        session.add(AuditLog(username=_actor(), action=f"release_key_{args.action}",
                             object_type="release_key", object_id=release_sign.key_id(key)))
    verb = "now accepts" if args.action == "trust" else "no longer accepts"
    print(f"the server {verb} releases signed by key {release_sign.key_id(key)} "
          f"({len(ota.release_pubs())} trusted)")
    return 0


def _stages(text: str) -> list[int]:
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give percentages separated by commas, e.g. --stages 34,100") from None


@subcommand("rollout", help="start, follow, pause or resume the staged roll-out of a release")
def _configure_rollout(parser: argparse.ArgumentParser):
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = sub.add_parser("start", help="offer a release: the canary first, then the stages")
    start.add_argument("--version", required=True, help="a release on the server, e.g. 1.1.0")
    start.add_argument("--canary", required=True, help="the handset that takes it first, e.g. NC0001")
    start.add_argument("--stages", type=_stages, default=[34, 100],
                       help="percentages of the fleet after the canary (default 34,100)")
    start.add_argument("--canary-timeout-s", type=int, default=3600,
                       help="the canary's time to come back on the new version; also each stage's "
                            "length (default 3600)")
    sub.add_parser("status", help="the roll-out's phase and the fleet's counts")
    sub.add_parser("pause", help="stop offering the release")
    sub.add_parser("resume", help="offer it again where the roll-out stopped")

    def run(args: argparse.Namespace) -> int:
        from . import db, ota

        app = _app()
        actor = _actor()
        with app.app_context():
            try:
                with db.write_session() as session:
                    if args.action == "start":
                        ota.start(session, {"version": args.version, "canary": args.canary,
                                            "stages": args.stages,
                                            "canary_timeout_s": args.canary_timeout_s},
                                  None, actor=actor)
                    elif args.action == "pause":
                        ota.pause(session, None, actor=actor)
                    elif args.action == "resume":
                        ota.resume(session, None, actor=actor)
                with db.write_session() as session:
                    body = ota.status(session)
            except ota.OtaError as exc:
                hint = {"no_release": " (`tgd-server release add FILE` first)",
                        "bad_canary": " (--canary: a registered handset id)"}.get(exc.code, "")
                flag = {"bad_rollout": "--stages/--canary-timeout-s: "}.get(exc.code, "")
                return _error(f"{flag}{exc.detail}{hint}", 3)
        if body is None:
            print("no roll-out is under way")
            return 0
        print(f"roll-out #{body['id']} {body['summary']}; offered {body['offered']}, "
              f"on {body['version']}: {body['on_version']}, failed {body['failed']}")
        return 0

    return run
