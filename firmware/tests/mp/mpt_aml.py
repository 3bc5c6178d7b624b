# AML v1 encoder against the strict rules of shared/reference/aml.md.
from tgd import aml
import aml_check

IMEI = "357365093474415"
NOW = 1795678200


def test_published_messages_pass_the_strict_decoder():
    for text in ('A"ML=1;lt=+54.76397;lg=-0.18305;rd=50;top=20130717141935;lc=90;pm=W;'
                 'si=123456789012345;ei=1234567890123456;mcc=234;mnc=30;ml=128',
                 'A"ML=1;lt=+48.902963;lg=+2.516582;rd=1964;top=20220210134654;lc=95;pm=G;'
                 'si=234302543446355;ei=357365093474415;mcc=208;mnc=01;ml=131'):
        assert aml_check.decode(text)["ml"] == str(len(text))


def test_gnss_fix():
    text = aml.encode({"m": "G", "lat": -22.276312, "lon": 166.457181, "acc": 12,
                       "t": 1795678190}, IMEI, 546, 1, NOW)
    f = aml_check.decode(text)
    assert f["lt"] == "-22.27631" and f["lg"] == "+166.45718"
    assert f["rd"] == "12" and f["pm"] == "G" and f["lc"] == "68"
    assert f["mcc"] == "546" and f["mnc"] == "01" and f["ei"] == IMEI
    assert f["top"] == "20261126072950"
    assert int(f["ml"]) == len(text) < 160


def test_no_position_is_method_n():
    for fix in (None, {"m": "N"}, {"m": "C"}):
        text = aml.encode(fix, IMEI, 546, 1, NOW)
        f = aml_check.decode(text)
        assert f["pm"] == "N" and f["lc"] == "0" and f["lt"] == "+00.00000"
        assert f["top"] == "20261126073000"


def test_ml_is_exact_across_length_boundaries():
    # lengths around 99/100 characters would shift ml's own digit count
    for lat in (0.0, -9.5, 45.123456, -89.99999):
        for acc in (5, 99, 12345, 9999999):
            text = aml.encode({"m": "G", "lat": lat, "lon": -179.5, "acc": acc, "t": NOW},
                              IMEI, 546, 1, NOW)
            assert aml_check.decode(text)["ml"] == str(len(text))


def test_exactly_twelve_keys():
    text = aml.encode(None, IMEI, 546, 1, NOW)
    keys = [p.split("=", 1)[0] for p in text.split(";")]
    assert keys == ['A"ML', "lt", "lg", "rd", "top", "lc", "pm", "si", "ei", "mcc", "mnc", "ml"]


def test_strict_decoder_rejects_broken_messages():
    good = aml.encode(None, IMEI, 546, 1, NOW)
    broken = [good.replace("ml=127", "ml=128"), good + ";x=1", good.replace("lc=0", "lc=0.5"),
              good.replace("pm=N", "pm=X"), good.replace('A"ML=1', 'A"ML=2'),
              good.replace("top=20261126073000", "top=2026112607300"), good + "x" * 40]
    for text in broken:
        try:
            aml_check.decode(text)
        except aml.AmlError:
            continue
        raise AssertionError("accepted " + text)


def test_bad_identity_is_refused():
    for imei in ("", "12345", "35736509347441x"):
        try:
            aml.encode(None, imei, 546, 1, NOW)
        except aml.AmlError:
            continue
        raise AssertionError(imei)


def test_unixtime_stamp():
    from tgd.unixtime import stamp
    assert stamp(0) == "19700101000000"
    assert stamp(951782400) == "20000229000000"
    assert stamp(1709210096) == "20240229123456"
