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


class ScriptedPort:
    """A pyserial-like port that answers each command with canned bytes (no modem here)."""

    def __init__(self, answers: dict[bytes, bytes]):
        self.answers = answers
        self.pending = b""
        self.in_waiting = 0

    def write(self, data: bytes) -> None:
        self.pending += self.answers[data]
        self.in_waiting = len(self.pending)

    def flush(self) -> None:
        pass

    def read(self, n: int) -> bytes:
        out, self.pending = self.pending[:n], self.pending[n:]
        self.in_waiting = len(self.pending)
        return out


def modem_with(answers: dict[bytes, bytes]):
    from tgd_server.sms.modem import AtModem

    modem = AtModem("unused")
    modem._serial = ScriptedPort(answers)
    return modem


def test_cmgl_in_the_real_sim7600_layout_with_a_stored_outgoing_message():
    # Real text-mode layout: the text right after its header, "" as the alpha field.
    answer = (b'\r\n+CMGL: 0,"REC UNREAD","+687751001","","26/11/26,19:31:17+44"\r\n'
              b'A"ML=1;first\r\n'
              b'+CMGL: 1,"STO UNSENT","+687700200",""\r\n'
              b'draft\r\n'
              b'+CMGL: 2,"REC READ","751002","","26/11/26,19:32:00+44"\r\nline one\nline two\r\n'
              b'\r\nOK\r\n')
    modem = modem_with({b'AT+CMGL="ALL"\r': answer})
    found = modem.list_sms("ALL", timeout=1)
    assert [(s.index, s.status, s.sender, s.text, s.received) for s in found] == [
        (0, "REC UNREAD", "+687751001", 'A"ML=1;first', True),
        (1, "STO UNSENT", "+687700200", "draft", False),
        (2, "REC READ", "751002", "line one\nline two", True),
    ]
    assert found[0].scts == datetime(2026, 11, 26, 8, 31, 17, tzinfo=UTC)
    assert found[1].scts is None


def test_cmgr_real_layout_urc_inside_and_empty_slot():
    modem = modem_with({
        b"AT+CMGR=4\r": (b'\r\n+CMGR: "REC UNREAD","+687751001","","26/11/26,19:31:17+44"\r\n'
                         b'hello\r\n\r\n+CMTI: "SM",5\r\n\r\nOK\r\n'),
        b"AT+CMGR=6\r": b"\r\nOK\r\n",
    })
    sms = modem.read_sms(4, timeout=1)
    assert (sms.sender, sms.text) == ("+687751001", "hello")
    assert modem.next_urc(timeout=0.01) == '+CMTI: "SM",5'  # routed, not part of the text
    assert modem.read_sms(6, timeout=1) is None


def test_rdy_during_a_command_is_a_reboot():
    from tgd_server.sms.modem import ModemRebooted

    modem = modem_with({b"AT+CMGD=1\r": b"\r\nRDY\r\n\r\n+CPIN: READY\r\n"})
    with pytest.raises(ModemRebooted):
        modem.delete_sms(1)
