# heapsize: 256k  (tests and helpers are compiled in the heap too; mpt_at_memory.py prints the figures)
# Parsers against the real lines of sim7600-at.md, and broken ones (None, never an exception).
from tgd.modem import atparse as p
from tgd.modem import atparse as r

CPSI_LTE = "+CPSI: LTE,Online,208-15,0x19C9,104313681,291,EUTRAN-BAND3,1675,4,4,-93,-1006,-731,14"
CPSI_LTE2 = "+CPSI: LTE,Online,260-03,0xE30A,71738389,435,EUTRAN-BAND3,1474,4,4,-115,-783,-481,20"
CPSI_GSM = "+CPSI: GSM,Online,460-00,0x182d,12401,27 EGSM 900,-64,2110,42-42"
CPSI_WCDMA = "+CPSI: WCDMA,Online,460-01,0Xa809,11122855,WCDMA IMT 2000,279,10663,0,1.5,62,33,52,500"
CGNSS = "+CGNSSINFO: 2,05,00,00,6041.475467,N,02846.185792,E,080222,114731.0,85.9,0.0,,1.5,1.3,0.9"
CGPS = "+CGPSINFO: 3113.343286,N,12121.234064,E,250311,072809.3,44.1,0.0,0"


def test_cpsi_all_forms():
    assert p.parse_cpsi(CPSI_LTE) == {"rat": "LTE", "mcc": 208, "mnc": 15, "lac": 0x19C9,
                                      "ci": 104313681, "sig": -101}
    assert p.parse_cpsi(CPSI_LTE2)["sig"] == -78
    assert p.parse_cpsi(CPSI_LTE2)["lac"] == 0xE30A
    assert p.parse_cpsi(CPSI_GSM) == {"rat": "GSM", "mcc": 460, "mnc": 0, "lac": 0x182D,
                                      "ci": 12401, "sig": -64}
    assert p.parse_cpsi(CPSI_WCDMA) == {"rat": "WCDMA", "mcc": 460, "mnc": 1, "lac": 0xA809,
                                        "ci": 11122855}
    assert p.parse_cpsi("+CPSI: NO SERVICE,Online") == {}


def test_cpsi_broken_lines():
    for line in ("+CPSI: LTE,Online,208-15", "+CPSI: LTE,Online,20815,0x19C9,1",
                 "+CPSI: LTE,Online,208-15,0xZZ,1", "+CPSI: LTE,Online,208-15,0x19C9,abc",
                 "+CPSI: CDMA,Online,1-1,0x1,1", "+CPSI:", "", "+CSQ: 1,2",
                 "+CPSI: LTE,Online,208-15,0x1FFFF,1", "+CPSI: LTE,Online,208-15,0x19C9,1,2,3,4,5,6,7,x"):
        assert p.parse_cpsi(line) is None, line


def test_cgnssinfo_fix_and_no_fix():
    fix = p.parse_cgnssinfo(CGNSS)
    assert fix["lat_e6"] == 60691258 and fix["lon_e6"] == 28769763, fix
    assert abs(fix["lat"] - 60.691258) < 1e-4 and abs(fix["lon"] - 28.769763) < 1e-4
    assert fix["t"] == 1644320851, fix["t"]  # 2022-02-08 11:47:31 UTC
    assert fix["alt"] == 86 and fix["acc"] == 7
    assert p.parse_cgnssinfo("+CGNSSINFO: ,,,,,,,,,,,,,,,") == {}


def test_cgnssinfo_southern_and_eastern_hemispheres():
    # Nouméa: 22 deg 16.5 min S, 166 deg 27 min E.
    line = "+CGNSSINFO: 3,09,05,00,2216.500000,S,16627.000000,E,261126,080000.0,12.0,0.0,,1.0,0.8,0.6"
    fix = p.parse_cgnssinfo(line)
    assert fix["lat_e6"] == -22275000 and fix["lon_e6"] == 166450000, fix
    assert fix["acc"] == 5  # HDOP 0.8 * 5 = 4 m, at least 5


def test_cgnssinfo_broken_lines():
    for line in ("+CGNSSINFO: 2,05,00,00,6041.475467,X,02846.185792,E,080222,114731.0,85.9,0.0,,1.5,1.3,0.9",
                 "+CGNSSINFO: 2,05,00,00,6071.475467,N,02846.185792,E,080222,114731.0,85.9,0.0,,1.5,1.3,0.9",
                 "+CGNSSINFO: 2,05,00,00,9141.475467,N,02846.185792,E,080222,114731.0,85.9,0.0,,1.5,1.3,0.9",
                 "+CGNSSINFO: 2,05,00,00,6041.475467,N,02846.185792,E,320222,114731.0,85.9,0.0,,1.5,1.3,0.9",
                 "+CGNSSINFO: 2,05,00,00,6041.475467,N,02846.185792,E,080222,254731.0,85.9,0.0,,1.5,1.3,0.9",
                 "+CGNSSINFO: 2,05,00,00,6041.475467,N,02846.185792,E",
                 "+CGNSSINFO: 2,05,00,00,60a1.475467,N,02846.185792,E,080222,114731.0,85.9,0.0,,1.5,1.3,0.9",
                 "+CGNSSINFO", "garbage"):
        assert p.parse_cgnssinfo(line) is None, line


def test_cgpsinfo_fix_no_fix_empty_course():
    fix = p.parse_cgpsinfo(CGPS)
    assert fix["lat_e6"] == 31222388 and fix["lon_e6"] == 121353901, fix
    assert fix["t"] == 1301038089, fix["t"]  # 2011-03-25 07:28:09 UTC
    assert fix["alt"] == 44 and fix["acc"] == 25
    assert p.parse_cgpsinfo("+CGPSINFO: 3113.343286,N,12121.234064,E,250311,072809.3,44.1,0.0,")["t"] == 1301038089
    assert p.parse_cgpsinfo("+CGPSINFO: ,,,,,,,,") == {}
    assert p.parse_cgpsinfo("+CGPSINFO: 3113.343286,N,12121.234064") is None
    assert p.parse_cgpsinfo("+CGPSINFO: 3113.343286,N,12121.234064,W,250311,072809.3,,,")["lon_e6"] == -121353901


def test_clcc():
    assert p.parse_clcc('+CLCC: 3,0,2,0,0,"17",129') == (3, 0, 2, "17")
    assert p.parse_clcc("+CLCC: 1,1,4,0,0") == (1, 1, 4, "")
    for line in ("+CLCC: 3,0", "+CLCC: x,0,2,0,0", "+CLCC: 3,0,9,0,0"):
        assert p.parse_clcc(line) is None, line


def test_registration_query_and_urc_forms():
    assert p.parse_registration("+CREG: 0,1") == (1, None, None, None)
    assert p.parse_registration('+CREG: 2,5,"00C3","B2A1"') == (5, 0xC3, 0xB2A1, None)
    assert p.parse_registration("+CREG: 2") == (2, None, None, None)  # URC, n=1
    assert p.parse_registration('+CREG: 1,"00C3","0000B2A1"') == (1, 0xC3, 0xB2A1, None)  # URC, n=2
    assert p.parse_registration('+CEREG: 2,1,"1100","5021",7') == (1, 0x1100, 0x5021, 7)
    assert p.parse_registration('+CEREG: 1,"1100","5021",7') == (1, 0x1100, 0x5021, 7)  # URC
    assert p.parse_registration('+CREG: 1,"00C3","B2A1",2') == (1, 0xC3, 0xB2A1, 2)
    assert p.parse_registration("+CEREG: 0,8") == (8, None, None, None)
    assert p.parse_registration("+CGREG: 0,3") == (3, None, None, None)
    assert p.act_rat(7, "+CREG") == "LTE" and p.act_rat(None, "+CEREG") == "LTE"
    assert p.act_rat(2, "+CREG") == "WCDMA" and p.act_rat(0, "+CREG") == "GSM"
    assert p.act_rat(None, "+CREG") == "unknown"
    assert p.is_registered(1) and p.is_registered(5)
    assert not p.is_registered(8) and not p.is_registered(2)
    for line in ("+CREG: x", "+CREG: 3,1", "+CSQ: 0,1", '+CREG: 1,"zz","1"', "+CREG:"):
        assert p.parse_registration(line) is None, line


def test_cpin():
    from tgd.modem.atparse import parse_cpin
    assert parse_cpin("+CPIN: READY") == "READY"
    assert parse_cpin("+CPIN: SIM PIN") == "SIM PIN"
    assert parse_cpin("+CPIN:") is None
    assert parse_cpin("+CSQ: 1,1") is None


def test_csq():
    assert p.parse_csq("+CSQ: 27,99") == (27, 99)
    assert p.parse_csq("+CSQ: 99,99") == (99, 99)
    for line in ("+CSQ: 50,99", "+CSQ: -1,0", "+CSQ: 27", "+CSQ:"):
        assert p.parse_csq(line) is None, line


def test_cclk_quarter_hour_zones_to_utc():
    assert r.parse_cclk('+CCLK: "26/11/26,19:00:00+44"') == 1795680000  # +11 h
    assert r.parse_cclk('+CCLK: "26/11/26,08:00:00+00"') == 1795680000
    assert r.parse_cclk('+CCLK: "26/11/26,03:00:00-20"') == 1795680000  # -5 h
    assert r.parse_cclk('+CCLK: "26/11/26,13:45:00+23"') == 1795680000  # +5 h 45
    assert r.parse_cclk('+CCLK: "24/02/29,00:00:00+00"') == 1709164800  # leap day
    for line in ('+CCLK: "80/01/06,00:00:12+00"', '+CCLK: "00/01/01,00:00:00+00"',
                 '+CCLK: "26/13/26,19:00:00+44"', '+CCLK: "25/02/29,00:00:00+00"',
                 '+CCLK: "26/11/26,19:00:00"', '+CCLK: 26/11/26', "+CCLK: "):
        assert r.parse_cclk(line) is None, line


def test_unix_seconds_matches_known_dates():
    assert p.unix_seconds(1970, 1, 1, 0, 0, 0) == 0
    assert p.unix_seconds(2000, 3, 1, 0, 0, 0) == 951868800
    assert p.unix_seconds(2038, 1, 19, 3, 14, 8) == 2147483648


def test_cbc():
    assert p.parse_cbc("+CBC: 3.591V") == 3591
    assert p.parse_cbc("+CBC: 4.2V") == 4200
    assert p.parse_cbc("+CBC: 0,80,3.987V") == 3987
    for line in ("+CBC: 3.591", "+CBC: xV", "+CBC: 12.5V", "+CBC:"):
        assert p.parse_cbc(line) is None, line


def test_sms_lines():
    assert p.parse_cmgs("+CMGS: 42") == 42
    assert p.parse_cmgs("+CMGS: 300") is None
    cds = '+CDS: 6,42,"+687700100",145,"26/11/26,08:00:00+44","26/11/26,08:00:02+44",0'
    assert p.parse_cds(cds) == (42, 0)
    assert p.parse_cds('+CDS: 6,42,"+687700100",145') is None
    assert r.delivery_state(0) == "delivered"
    assert r.delivery_state(48) == "pending"
    assert r.delivery_state(70) == "failed"
    assert r.parse_cmti('+CMTI: "SM",3') == ("SM", 3)
    assert r.parse_cmti('+CMTI: "SM"') is None
    assert r.parse_cmgr('+CMGR: "REC UNREAD","02152063113",,"26/11/26,08:00:00+44"') == (
        "REC UNREAD", "02152063113", "26/11/26,08:00:00+44")
    assert r.parse_cmgr('+CMGR: "REC READ"') is None


def test_http_lines():
    assert p.parse_httpaction("+HTTPACTION: 1,200,57") == (1, 200, 57)
    assert p.parse_httpaction("+HTTPACTION: 1,713,0") == (1, 713, 0)
    assert p.parse_httpaction("+HTTPACTION: 1,20") is None
    assert r.parse_httpread("+HTTPREAD: DATA,15") == ("DATA", 15)
    assert r.parse_httpread("+HTTPREAD: 0") == ("END", 0)
    assert r.parse_httpread("+HTTPREAD:0") == ("END", 0)
    assert r.parse_httpread("+HTTPREAD: LEN,57") == ("LEN", 57)
    assert r.parse_httpread("+HTTPREAD: FOO,1") is None


def test_identity_and_gnss_state():
    assert r.parse_iccid("+ICCID: 898600700907A6019125") == "898600700907A6019125"
    assert r.parse_iccid("+ICCID: 8986-0070") is None
    assert r.parse_imei("861234567890123") == "861234567890123"
    assert r.parse_imei("86123456789012") is None
    assert p.parse_cgps("+CGPS: 1,1") is True
    assert p.parse_cgps("+CGPS: 0") is False
    assert p.parse_cgps("+CGPS: 7") is None


def test_split_fields_keeps_quoted_commas():
    assert p.split_fields('a,"b,c",,d') == ["a", '"b,c"', "", "d"]


def test_parsers_never_raise_on_noise():
    noise = ("", ",", ",,,,,,,,,,,,,,,,,,,,", '"', '",', "\x00\xff", "+", ":", "-", ".",
             "0x", "99999999999999999999999", "-.-", "1e5", "nan")
    prefixes = ("+CPSI: ", "+CGNSSINFO: ", "+CGPSINFO: ", "+CLCC: ", "+CREG: ", "+CEREG: ",
                "+CSQ: ", "+CCLK: ", "+CBC: ", "+CMGS: ", "+CDS: ", "+CMTI: ", "+CMGR: ",
                "+HTTPACTION: ", "+HTTPREAD: ", "+CGPS: ", "+ICCID: ", "")
    parsers = (p.parse_cpsi, p.parse_cgnssinfo, p.parse_cgpsinfo, p.parse_clcc,
               p.parse_registration, p.parse_csq, r.parse_cclk, p.parse_cbc, p.parse_cmgs,
               p.parse_cds, r.parse_cmti, r.parse_cmgr, p.parse_httpaction, r.parse_httpread,
               p.parse_cgps, r.parse_iccid, r.parse_imei)
    for prefix in prefixes:
        for body in noise:
            for parser in parsers:
                parser(prefix + body)  # must not raise


def test_truncated_real_lines_never_raise():
    for line in (CPSI_LTE, CPSI_GSM, CPSI_WCDMA, CGNSS, CGPS):
        for cut in range(len(line)):
            for parser in (p.parse_cpsi, p.parse_cgnssinfo, p.parse_cgpsinfo):
                parser(line[:cut])
