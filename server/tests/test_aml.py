"""AML v1 parser: the real published messages pass, every broken variant is refused."""

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tgd_server.sms.aml import AmlError, build_aml, looks_like_aml, parse_aml

REAL_UK = (
    'A"ML=1;lt=+54.76397;lg=-0.18305;rd=50;top=20130717141935;lc=90;pm=W;'
    "si=123456789012345;ei=1234567890123456;mcc=234;mnc=30;ml=128"
)
REAL_FR = (
    'A"ML=1;lt=+48.902963;lg=+2.516582;rd=1964;top=20220210134654;lc=95;pm=G;'
    "si=234302543446355;ei=357365093474415;mcc=208;mnc=01;ml=131"
)


def with_ml(text_without_ml: str) -> str:
    """Append a correct ml to a body ending in 'ml=' so only the tested flaw remains."""
    length = len(text_without_ml) + 3
    return text_without_ml + str(length)


def test_real_uk_message_parses():
    msg = parse_aml(REAL_UK)
    assert (msg.lat, msg.lon, msg.radius_m) == (54.76397, -0.18305, 50)
    assert msg.time_of_positioning == datetime(2013, 7, 17, 14, 19, 35, tzinfo=UTC)
    assert (msg.confidence_pct, msg.method, msg.mcc, msg.mnc) == (90, "W", "234", "30")
    assert msg.imei == "1234567890123456" and msg.length == 128


def test_real_french_message_parses():
    msg = parse_aml(REAL_FR)
    assert (msg.lat, msg.lon, msg.radius_m, msg.method) == (48.902963, 2.516582, 1964, "G")
    assert msg.mnc == "01" and msg.imsi == "234302543446355" and msg.has_position


def test_no_position_convention_parses_without_position():
    text = with_ml(
        'A"ML=1;lt=+00.00000;lg=+000.00000;rd=0;top=20261126101500;lc=0;pm=N;'
        "si=546010000000001;ei=861234567890123;mcc=546;mnc=01;ml="
    )
    msg = parse_aml(text)
    assert not msg.has_position


@pytest.mark.parametrize(
    "text, code",
    [
        (REAL_UK.replace("ml=128", "ml=127"), "bad_length"),
        (REAL_UK.replace("ml=128", "ml=1280"), "bad_length"),
        (REAL_FR.replace("ml=131", "ml=abc"), "bad_value"),
        (REAL_UK.replace(";pm=W;", ";pm=W;xx=1;").replace("ml=128", "ml=133"), "unknown_key"),
        (REAL_UK.replace(";lc=90", "").replace("ml=128", "ml=122"), "missing_key"),
        (REAL_UK.replace(";si=123456789012345", "").replace("ml=128", "ml=109"), "missing_key"),
        (REAL_UK.replace("lc=90;", "lc=90;lc=91;").replace("ml=128", "ml=134"), "duplicate_key"),
        (REAL_UK.replace("top=20130717141935", "top=20131317141935"), "bad_value"),
        (REAL_UK.replace("top=20130717141935", "top=20130230141935"), "bad_value"),
        (REAL_UK.replace("top=20130717141935", "top=2013071714193Z"), "bad_value"),
        (REAL_UK.replace("top=20130717141935", "top=201307171419").replace("ml=128", "ml=126"), "bad_value"),
        (REAL_UK.replace("lc=90", "lc=9.0").replace("ml=128", "ml=129"), "bad_value"),
        (REAL_UK.replace("lc=90", "lc=ab"), "bad_value"),
        (REAL_UK.replace("lc=90", "lc=900").replace("ml=128", "ml=129"), "bad_value"),
        (REAL_UK.replace("pm=W", "pm=X"), "bad_value"),
        (REAL_UK.replace("pm=W", "pm=").replace("ml=128", "ml=127"), "bad_value"),
        (REAL_UK.replace('A"ML=1', 'A"ML=2'), "bad_version"),
        (REAL_UK.replace("lt=+54.76397", "lt=+94.76397"), "bad_value"),
        (REAL_UK.replace("lg=-0.18305", "lg=-200.183"), "bad_value"),
        (REAL_UK.replace("lt=+54.76397", "lt=NaN.76397"), "bad_value"),
        (REAL_UK.replace("lt=+54.76397", "lt=+5.47e+01"), "bad_value"),
        (REAL_UK.replace("rd=50", "rd=-5"), "bad_value"),
        (REAL_UK.replace("si=123456789012345", "si=12345678901234X"), "bad_value"),
        (REAL_UK.replace("mcc=234", "mcc=2X4"), "bad_value"),
        (REAL_UK.replace("lc=90;", "lc90;"), "malformed"),
        (REAL_UK + ";", "malformed"),
        ("lt=+54.76397;" + REAL_UK, "not_aml"),
        ("Hello, call me back", "not_aml"),
        ("", "not_aml"),
        (REAL_UK.replace('A"ML', "AML"), "not_aml"),
    ],
)
def test_broken_messages_are_refused(text, code):
    with pytest.raises(AmlError) as err:
        parse_aml(text)
    assert err.value.code == code


def test_over_160_characters_is_refused_even_with_a_matching_ml():
    long_text = with_ml(REAL_UK.replace("lt=+54.76397", "lt=+54.76397" + "0" * 40)[:-3])
    assert len(long_text) > 160 and long_text.endswith(f"ml={len(long_text)}")
    with pytest.raises(AmlError) as err:
        parse_aml(long_text)
    assert err.value.code == "too_long"


def test_builder_round_trips_with_a_correct_length():
    top = datetime(2026, 11, 26, 8, 0, 0, tzinfo=UTC)
    text = build_aml(
        lat=-22.2741, lon=166.4488, radius_m=900, time_of_positioning=top,
        confidence_pct=68, method="C", imsi="546010000000001", imei="861234567890123",
        mcc="546", mnc="01",
    )
    msg = parse_aml(text)
    assert msg.length == len(text) <= 160
    assert (msg.lat, msg.lon, msg.radius_m, msg.method) == (-22.2741, 166.4488, 900, "C")
    assert msg.time_of_positioning == top


@given(st.text(max_size=200))
def test_arbitrary_text_gives_a_message_or_a_typed_error(text):
    try:
        msg = parse_aml(text)
    except AmlError as err:
        assert err.code
    else:
        assert msg.length == len(text)


@given(
    st.floats(min_value=-90, max_value=90),
    st.floats(min_value=-180, max_value=180),
    st.integers(min_value=0, max_value=99999),
)
def test_builder_output_always_parses(lat, lon, radius):
    text = build_aml(
        lat=lat, lon=lon, radius_m=radius, time_of_positioning=datetime(2026, 1, 1, tzinfo=UTC),
        confidence_pct=68, method="G", imsi="546010000000001", imei="8612345678901234",
        mcc="546", mnc="01",
    )
    assert looks_like_aml(text)
    assert abs(parse_aml(text).lat - lat) < 1e-5
