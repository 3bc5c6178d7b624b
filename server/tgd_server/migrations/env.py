"""Alembic environment: the engine comes from the caller (tgd_server.migrate)."""

from alembic import context

from tgd_server.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = context.config.attributes.get("engine")
    if engine is None:
        from tgd_server import db, settings

        engine = db.make_engine(settings.from_environment()["TGD_DATABASE_URL"])
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
