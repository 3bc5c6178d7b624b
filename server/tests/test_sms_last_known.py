"""An AML SMS without a position on an alarm that has none gets the handset's last
known position, marked as such (data down, no GNSS fix yet)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from tgd_server.db import make_engine
from tgd_server.models import AlarmEvent, Base, Device, Position
from tgd_server.sms.aml import build_aml
from tgd_server.sms.ingest_sms import ingest_aml_sms

NUMBER = "+687751001"


@pytest.fixture
def factory(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'sms.sqlite3'}")
    Base.metadata.create_all(engine)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


def no_position_aml(rd: str = "0") -> str:
    """No position, as our handset writes it (rd=0) or as Google's do (rd=N, aml.md)."""
    top = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    body = (f'A"ML=1;lt=+00.00000;lg=+000.00000;rd={rd};top={top};lc=0;pm=N;'
            "si=546010000000001;ei=861234567890123;mcc=546;mnc=01;ml=")
    return body + str(len(body) + 3)


def add_device(factory, **last) -> None:
    with factory() as session:
        session.add(Device(id="NC0001", special_number=NUMBER, imei="861234567890123",
                           key_hex="00" * 32, **last))
        session.commit()


@pytest.mark.parametrize("rd", ["0", "N"])
def test_position_less_aml_gets_the_last_known_position_with_its_age(factory, rd):
    fixed_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=25)
    add_device(factory, last_lat=-22.2741, last_lon=166.4488, last_acc_m=900, last_method="C",
               last_fix_at=fixed_at)
    result = ingest_aml_sms(NUMBER, no_position_aml(rd), factory=factory)
    assert result.answer["status"] == "accepted"
    with factory() as session:
        position = session.scalars(select(Position)).one()
        assert (position.lat, position.lon, position.acc_m, position.method) == (
            -22.2741, 166.4488, 900, "C")
        assert position.fix_at.replace(tzinfo=UTC) == fixed_at  # its real age, not "now"
        kinds = session.scalars(select(AlarmEvent.kind)).all()
        assert "last_known_position" in kinds


def test_no_last_known_position_means_no_invented_one(factory):
    add_device(factory)
    ingest_aml_sms(NUMBER, no_position_aml(), factory=factory)
    with factory() as session:
        assert session.scalars(select(Position)).all() == []


def test_an_alarm_that_has_a_position_is_not_given_an_older_one(factory):
    add_device(factory, last_lat=-22.2741, last_lon=166.4488, last_acc_m=900, last_method="C",
               last_fix_at=datetime.now(UTC) - timedelta(hours=1))
    first = build_aml(lat=-22.3, lon=166.44, radius_m=8, time_of_positioning=datetime.now(UTC),
                      confidence_pct=68, method="G", imsi="546010000000001",
                      imei="861234567890123", mcc="546", mnc="01")
    ingest_aml_sms(NUMBER, first, factory=factory)
    ingest_aml_sms(NUMBER, no_position_aml(), factory=factory)
    with factory() as session:
        assert [p.method for p in session.scalars(select(Position))] == ["G"]
