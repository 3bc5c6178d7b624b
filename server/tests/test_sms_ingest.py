"""ingest_aml_sms: AML from a handset opens or joins its alarm; everything else is kept for review."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from tgd_server import cells, events
from tgd_server.db import make_engine
from tgd_server.ingest import ingest_device_message
from tgd_server.models import Alarm, AlarmEvent, Base, Device, InboundSms, Position
from tgd_server.sms.aml import build_aml
from tgd_server.sms.ingest_sms import canonical_number, ingest_aml_sms, number_variants

KEY = "11" * 32
NUMBER = "+687751001"


@pytest.fixture
def factory(database_url):
    """Sessions on SQLite and on PostgreSQL (conftest's `database_url`: its own schema)."""
    engine = make_engine(database_url)
    Base.metadata.create_all(engine)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture
def device(factory):
    with factory() as session:
        session.add(Device(id="NC0001", special_number=NUMBER, imei="861234567890123",
                           key_hex=KEY))
        session.commit()
    return "NC0001"


def aml(lat=-22.2741, lon=166.4488, rd=12, method="G", top=None):
    return build_aml(lat=lat, lon=lon, radius_m=rd,
                     time_of_positioning=top or datetime.now(UTC).replace(microsecond=0),
                     confidence_pct=68, method=method, imsi="546010000000001",
                     imei="861234567890123", mcc="546", mnc="01")


def signed_alarm(aid="3fa9c01b", seq=1):
    now = int(datetime.now(UTC).timestamp())
    body = json.dumps({
        "v": 1, "dev": "NC0001", "seq": seq, "type": "alarm", "t": now, "aid": aid, "at": now,
        "fix": {"m": "C"}, "cell": {"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 4352, "ci": 20481},
        "bat": 3987, "csq": 21, "fw": "1.0.0", "ch": {"call": "dialing", "sms": "pending"},
    }, separators=(",", ":")).encode()
    import hashlib
    import hmac

    return body, hmac.new(bytes.fromhex(KEY), body, hashlib.sha256).hexdigest()


def count(factory, model, *where):
    with factory() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


# --- numbers ------------------------------------------------------------------------

@pytest.mark.parametrize("given", ["+687751001", "687751001", "00687751001", "751001",
                                   "+687 75 10 01", "75.10.01"])
def test_every_form_of_a_caledonian_number_is_the_same(given):
    assert canonical_number(given) == "+687751001"
    assert "+687751001" in number_variants(given)


def test_foreign_and_alphanumeric_senders_stay_themselves():
    assert canonical_number("+33612345678") == "+33612345678"
    assert canonical_number("0033612345678") == "+33612345678"
    assert canonical_number("Mobilis") == "Mobilis"


# --- the channel ------------------------------------------------------------------------

def test_aml_before_the_data_message_opens_the_alarm_which_the_data_then_joins(factory, device):
    received = datetime.now(UTC).replace(microsecond=0)
    with events.subscribe() as sub:
        result = ingest_aml_sms("687751001", aml(), received, factory=factory)
        kinds = [sub.get(1)["type"], sub.get(1)["type"]]
    assert result.status == 200 and result.answer["status"] == "accepted"
    assert kinds == ["alarm.created", "position.added"]
    with factory() as session:
        alarm = session.scalars(select(Alarm)).one()
        assert alarm.aid is None and alarm.first_channel == "sms"
        position = session.scalars(select(Position)).one()
        assert (position.method, position.acc_m, position.channel) == ("G", 12, "sms")
        assert position.alarm_id == alarm.id
        steps = session.scalars(select(AlarmEvent.kind)).all()
        assert steps == ["aml"]
        sms = session.scalars(select(InboundSms)).one()
        assert (sms.status, sms.device_id, sms.alarm_id) == ("accepted", "NC0001", alarm.id)

    body, signature = signed_alarm()
    answer = ingest_device_message(body, signature, "http", "test", factory=factory)
    assert answer.status == 200, answer.answer
    assert count(factory, Alarm) == 1
    with factory() as session:
        alarm = session.scalars(select(Alarm)).one()
        assert alarm.aid == "3fa9c01b"


def test_aml_after_the_data_message_joins_the_open_alarm(factory, device):
    with factory() as session:
        cells.import_csv(session, cells.Path(cells.__file__).parent / "data" / "cells_nc.csv")
    body, signature = signed_alarm()
    assert ingest_device_message(body, signature, "http", "test", factory=factory).status == 200
    result = ingest_aml_sms(NUMBER, aml(method="C", rd=900), factory=factory)
    assert result.answer["status"] == "accepted"
    assert count(factory, Alarm) == 1
    assert count(factory, AlarmEvent, AlarmEvent.kind == "aml") == 1
    assert count(factory, Position, Position.channel == "sms", Position.method == "C") == 1


def test_second_aml_of_the_same_alarm_adds_to_it(factory, device):
    ingest_aml_sms(NUMBER, aml(), factory=factory)
    ingest_aml_sms(NUMBER, aml(lat=-22.28, rd=8), datetime.now(UTC) + timedelta(seconds=30),
                   factory=factory)
    assert count(factory, Alarm) == 1 and count(factory, Position) == 2


def test_no_position_aml_still_raises_the_alarm(factory, device):
    text_n = aml(lat=0.0, lon=0.0, rd=0, method="N")
    assert ingest_aml_sms(NUMBER, text_n, factory=factory).answer["status"] == "accepted"
    assert count(factory, Alarm) == 1 and count(factory, Position) == 0


def test_same_sms_handed_over_twice_changes_nothing_the_second_time(factory, device):
    received = datetime(2026, 11, 26, 8, 0, 0, tzinfo=UTC)
    first = ingest_aml_sms(NUMBER, aml(), received, factory=factory)
    again = ingest_aml_sms(NUMBER, aml(), received, factory=factory)
    assert again.answer["duplicate"] and again.answer["inbound_sms_id"] == first.answer["inbound_sms_id"]
    assert count(factory, InboundSms) == 1 and count(factory, Position) == 1
    assert count(factory, AlarmEvent) == 1


@pytest.mark.parametrize("sender, message, status", [
    ("+687999999", "AML from a stranger", "unknown_sender"),
    ("+687999999", None, "unknown_sender"),
    ("Mobilis", "Votre credit est de 1000 F", "unknown_sender"),
    (NUMBER, "Help me", "review"),
    (NUMBER, "broken", "review"),
])
def test_unknown_sender_and_non_aml_are_kept_for_review_never_an_alarm(
        factory, device, sender, message, status):
    if message is None or message == "AML from a stranger":
        message = aml()
    if message == "broken":
        message = aml().replace("ml=", "ml=9")
    result = ingest_aml_sms(sender, message, factory=factory)
    assert result.status == 200 and result.answer["status"] == status
    assert count(factory, Alarm) == 0 and count(factory, Position) == 0
    with factory() as session:
        sms = session.scalars(select(InboundSms)).one()
        assert (sms.sender, sms.text, sms.status) == (sender, message, status)
        assert sms.reason
        assert sms.device_id == ("NC0001" if status == "review" else None)


def test_retired_handset_number_is_an_unknown_sender(factory, device):
    with factory() as session:
        session.get(Device, "NC0001").retired_at = datetime.now(UTC)
        session.commit()
    assert ingest_aml_sms(NUMBER, aml(), factory=factory).answer["status"] == "unknown_sender"
    assert count(factory, Alarm) == 0


def test_sms_and_data_message_racing_make_exactly_one_alarm(factory, device):
    """Both channels of one trigger arrive at the same instant, ten times over."""
    import threading

    for round_no in range(10):
        aid = f"{round_no:08x}"
        body, signature = signed_alarm(aid=aid, seq=round_no + 1)
        barrier = threading.Barrier(2)
        results: dict[str, object] = {}

        def by_sms(results=results, barrier=barrier, round_no=round_no):
            barrier.wait()
            results["sms"] = ingest_aml_sms(NUMBER, aml(lat=-22.2 - round_no / 100),
                                            factory=factory)

        def by_data(results=results, barrier=barrier, body=body, signature=signature):
            barrier.wait()
            results["data"] = ingest_device_message(body, signature, "http", "race",
                                                    factory=factory)

        threads = [threading.Thread(target=by_sms), threading.Thread(target=by_data)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert results["data"].status == 200, results["data"].answer
        assert results["sms"].answer["status"] == "accepted"
        with factory() as session:
            open_alarms = session.scalars(select(Alarm).where(Alarm.state != "closed")).all()
            assert [a.aid for a in open_alarms] == [aid], f"round {round_no}"
            for alarm in open_alarms:  # close it, as the police would, before the next round
                alarm.state = "closed"
                alarm.closed_at = datetime.now(UTC)
            session.commit()


def test_imei_other_than_the_registered_one_is_accepted_but_noted(factory, device):
    other_imei = aml().replace("ei=861234567890123", "ei=359999999999999")
    result = ingest_aml_sms(NUMBER, other_imei, factory=factory)
    assert result.answer["status"] == "accepted"
    with factory() as session:
        assert "differs from the registered" in session.scalars(select(InboundSms)).one().reason
        kinds = sorted(session.scalars(select(AlarmEvent.kind)).all())
        assert kinds == ["aml", "aml_imei_mismatch"]


def test_imeisv_form_of_the_registered_imei_is_the_same_handset(factory, device):
    imeisv = aml().replace("ei=861234567890123", "ei=8612345678901201")
    ingest_aml_sms(NUMBER, imeisv, factory=factory)
    with factory() as session:
        assert "differs" not in session.scalars(select(InboundSms)).one().reason


def test_non_aml_during_an_open_alarm_is_noted_on_it_but_opens_nothing(factory, device):
    body, signature = signed_alarm()
    assert ingest_device_message(body, signature, "http", "test", factory=factory).status == 200
    result = ingest_aml_sms(NUMBER, "A\"ML=1;lt=+12", factory=factory)
    assert result.answer["status"] == "review" and result.answer["alarm_id"] is not None
    assert count(factory, Alarm) == 1
    assert count(factory, AlarmEvent, AlarmEvent.kind == "sms_review") == 1


def test_received_sms_follow_the_position_retention(factory, device):
    from tgd_server.retention import purge_positions

    old = datetime.now(UTC) - timedelta(days=40)
    ingest_aml_sms(NUMBER, aml(), old, factory=factory)
    ingest_aml_sms("+687999999", "hello", old, factory=factory)
    ingest_aml_sms(NUMBER, aml(lat=-22.3), factory=factory)
    with factory() as session:
        counts = purge_positions(session, 30)
        session.commit()
    assert counts["sms"] == 2 and count(factory, InboundSms) == 1


@pytest.mark.parametrize("padding", ["\n", " ", "\r\n", "  \n"])
def test_padding_around_a_valid_aml_does_not_cost_the_alarm(factory, device, padding):
    assert ingest_aml_sms(NUMBER, aml() + padding, factory=factory).answer["status"] == "accepted"


def test_padding_does_not_rescue_a_broken_aml(factory, device):
    broken = aml().replace("lc=68", "lc=6") + " "
    assert ingest_aml_sms(NUMBER, broken, factory=factory).answer["status"] == "review"


def test_a_nul_character_cannot_make_an_sms_unstorable(factory, device):
    result = ingest_aml_sms(NUMBER, "mail me at x\x00y.nc", factory=factory)
    assert result.answer["status"] == "review"
    with factory() as session:
        assert session.scalars(select(InboundSms.text)).one() == "mail me at x\ufffdy.nc"
