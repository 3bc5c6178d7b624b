"""Database access: one engine per app, one session per request.

SQLite (the default, a file under var/) runs in WAL mode; a write transaction
that must not race (ingest) begins with BEGIN IMMEDIATE (`write_session`), which
on PostgreSQL is a plain transaction where the ingest locks the device row.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import current_app, g
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .models import Base

_BEGIN_OPTION = "tgd_sqlite_begin"


def normalise_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (the only PostgreSQL driver installed)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
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
    """The session of the current request (or app context), closed at teardown."""
    if "tgd_session" not in g:
        g.tgd_session = session_factory()()
    return g.tgd_session


def _close_session(_exc) -> None:
    session = g.pop("tgd_session", None)
    if session is not None:
        session.close()


@contextmanager
def write_session(factory: sessionmaker | None = None) -> Iterator[Session]:
    """A session whose transaction serialises writers (BEGIN IMMEDIATE on SQLite).

    Commits on success, rolls back on any exception.
    """
    factory = factory or session_factory()
    session = factory()
    try:
        if is_sqlite(session.get_bind()):
            session.connection(execution_options={_BEGIN_OPTION: "IMMEDIATE"})
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def create_all(engine_: Engine) -> None:
    """Tables straight from the models (tests); production uses the migrations."""
    Base.metadata.create_all(engine_)
