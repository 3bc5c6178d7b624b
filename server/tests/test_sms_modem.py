"""Pure parsing helpers of the gateway's AT client."""

from datetime import UTC, datetime

import pytest

from tgd_server.sms.modem import CmsError, parse_cmti, parse_scts


@pytest.mark.parametrize("stamp, expected", [
    ("26/11/26,19:31:17+44", datetime(2026, 11, 26, 8, 31, 17, tzinfo=UTC)),  # Noumea, UTC+11
    ("14/08/06,16:51:33+32", datetime(2014, 8, 6, 8, 51, 33, tzinfo=UTC)),
    ("26/01/01,00:30:00-08", datetime(2026, 1, 1, 2, 30, 0, tzinfo=UTC)),
])
def test_service_centre_stamps_become_utc(stamp, expected):
    assert parse_scts(stamp) == expected


@pytest.mark.parametrize("stamp", ["", "26/13/26,19:31:17+44", "garbage", "26/11/26 19:31:17"])
def test_odd_stamps_give_none(stamp):
    assert parse_scts(stamp) is None


@pytest.mark.parametrize("line, index", [
    ('+CMTI: "SM",3', 3), ('+CMTI: "ME",17', 17), ('+CMTI: "SM",', None),
    ("+CMTI: SM,3", None), ("RING", None),
])
def test_cmti(line, index):
    assert parse_cmti(line) == index


def test_cms_error_code_numeric_or_verbose():
    assert CmsError("+CMGR=1", "+CMS ERROR: 321").code == 321
    assert CmsError("+CMGS", "+CMS ERROR: Unknown error").code == "Unknown error"
