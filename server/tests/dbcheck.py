"""Helpers to look into the test database."""

from sqlalchemy import func, select

from tgd_server import db
from tgd_server.models import (
    Alarm,
    AlarmEvent,
    AuditLog,
    Cell,
    Command,
    DeviceMessage,
    Position,
    SecurityLog,
)

# Tables a device message may write to (the security log aside).
MESSAGE_TABLES = (Alarm, AlarmEvent, Position, DeviceMessage, Command, Cell)


def count(app, model, *where) -> int:
    with app.app_context():
        query = select(func.count()).select_from(model)
        if where:
            query = query.where(*where)
        return db.get_session().scalar(query)


def message_rows(app) -> dict:
    return {m.__tablename__: count(app, m) for m in MESSAGE_TABLES}


def security_events(app) -> list[str]:
    with app.app_context():
        return list(db.get_session().scalars(select(SecurityLog.event).order_by(SecurityLog.id)))


def audit_rows(app) -> list[tuple]:
    with app.app_context():
        rows = db.get_session().execute(
            select(AuditLog.username, AuditLog.action, AuditLog.object_type, AuditLog.object_id)
            .order_by(AuditLog.id)).all()
        return [tuple(r) for r in rows]


def one(app, query):
    with app.app_context():
        return db.get_session().execute(query).one()
