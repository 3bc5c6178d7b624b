"""The Alembic migrations produce exactly the schema of the models."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tgd_server import db, migrate
from tgd_server.models import Base


def test_migrations_match_models(database_url):
    engine = db.make_engine(database_url)
    try:
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) is not None
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
        assert differences == []
        migrate.upgrade(engine)  # idempotent
    finally:
        engine.dispose()
