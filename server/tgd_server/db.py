"""Database access: one engine per app, one read session per request, one way to write.

Every write goes through `write_session()`: on SQLite (the default, a file under
var/, WAL mode) its transactions begin with BEGIN IMMEDIATE, so a read followed by
a write can never fail with "database is locked" when another writer (the ingest)
commits in between; on PostgreSQL it is a plain transaction (the ingest locks the
device row, the alarm operations SELECT ... FOR UPDATE).

The request's session (`get_session()`) is read-only: a flush or an INSERT/UPDATE/
DELETE through it raises `WriteOutsideWriteSession` at once, on every backend, so a
route cannot forget the write mechanism (it would otherwise fail only under load, on
SQLite).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app, g
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from . import file_modes
from .models import Base

_BEGIN_OPTION = "tgd_sqlite_begin"
# Row ids are `integer` on PostgreSQL (32 bits): a larger one in a URL is no row (404),
# never a database error.
MAX_ROW_ID = 2**31 - 1
_READ_ONLY = "tgd_read_only"


class WriteOutsideWriteSession(RuntimeError):
    """A write through a read-only session: use `db.write_session()`."""


@event.listens_for(Session, "before_flush")
def _refuse_read_only_flush(session, _flush_context, _instances) -> None:
    if session.info.get(_READ_ONLY) and (session.new or session.dirty or session.deleted):
        raise WriteOutsideWriteSession(
            "the request's session is read-only: write inside db.write_session()")


@event.listens_for(Session, "do_orm_execute")
def _refuse_read_only_statement(state) -> None:
    if state.session.info.get(_READ_ONLY) and (
            state.is_insert or state.is_update or state.is_delete):
        raise WriteOutsideWriteSession(
            "the request's session is read-only: write inside db.write_session()")


def normalise_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (the only PostgreSQL driver installed)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = file_modes.sqlite_path(url)
        if path is not None:
            file_modes.prepare_sqlite_file(path)  # var/ 0700, the file (so WAL, SHM) 0600
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling cannot do BEGIN IMMEDIATE nor SAVEPOINT:
    # take it over (SQLAlchemy's documented recipe).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # an answered message survives a power cut
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def init_app(app) -> None:
    engine = make_engine(app.config["TGD_DATABASE_URL"])
    app.extensions["tgd_engine"] = engine
    app.extensions["tgd_sessionmaker"] = sessionmaker(bind=engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def engine() -> Engine:
    return current_app.extensions["tgd_engine"]


def session_factory() -> sessionmaker:
    return current_app.extensions["tgd_sessionmaker"]


def get_session() -> Session:
    """The read-only session of the current request (or app context), closed at teardown.

    Writing through it raises WriteOutsideWriteSession: writes go in `write_session()`.
    """
    if "tgd_session" not in g:
        session = session_factory()()
        session.info[_READ_ONLY] = True
        g.tgd_session = session
    return g.tgd_session


def _close_session(_exc) -> None:
    session = g.pop("tgd_session", None)
    if session is not None:
        session.close()


@contextmanager
def write_session(factory: sessionmaker | None = None) -> Iterator[Session]:
    """A session whose transactions serialise writers (BEGIN IMMEDIATE on SQLite).

    The only way to write (the request's session is read-only). Commits on success,
    rolls back on any exception. Every transaction of the session begins IMMEDIATE,
    also one after a commit inside the block. On SQLite never open one while the
    same thread holds another open: the second would wait for the first.
    """
    factory = factory or session_factory()
    bind = factory.kw.get("bind")
    if isinstance(bind, Engine) and is_sqlite(bind):
        session = factory(bind=_immediate(bind))
    else:
        session = factory()
    session.info[_READ_ONLY] = False
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _immediate(bind: Engine) -> Engine:
    """The engine whose transactions begin IMMEDIATE (cached on the engine)."""
    immediate = getattr(bind, "_tgd_immediate", None)
    if immediate is None:
        immediate = bind.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
        bind._tgd_immediate = immediate
    return immediate


def create_all(engine_: Engine) -> None:
    """Tables straight from the models (tests); production uses the migrations."""
    Base.metadata.create_all(engine_)
