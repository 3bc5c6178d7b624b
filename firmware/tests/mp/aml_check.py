# Strict AML v1 decoder for the tests (shared/reference/aml.md, the GridGears rules).
# Not part of the firmware: aml.py, which the handset loads during an alarm, only encodes.
from tgd.aml import AmlError, _digits


def decode(text):
    """Strict parse (the GridGears rules), for tests and self-checks: dict or AmlError."""
    if len(text) > 160:
        raise AmlError("over 160 characters")
    pairs = text.split(";")
    out = {}
    for p in pairs:
        if "=" not in p:
            raise AmlError("pair without '='")
        k, v = p.split("=", 1)
        if k in out:
            raise AmlError("duplicate key " + k)
        out[k] = v
    keys = ('A"ML', "lt", "lg", "rd", "top", "lc", "pm", "si", "ei", "mcc", "mnc", "ml")
    if len(out) != 12 or any(k not in out for k in keys) or not text.startswith('A"ML='):
        raise AmlError("not exactly the 12 AML v1 keys")
    if out['A"ML'] != "1":
        raise AmlError("version is not 1")
    if not out["ml"].isdigit() or int(out["ml"]) != len(text):
        raise AmlError("ml is not the length")
    if not out["lc"].isdigit() or not out["rd"].isdigit():
        raise AmlError("lc/rd not integers")
    if out["pm"] not in ("G", "W", "C", "N"):
        raise AmlError("bad pm")
    top = out["top"]
    if len(top) != 14 or not top.isdigit():
        raise AmlError("top not yyyyMMddHHmmss")
    mo, d, h, mi, s = int(top[4:6]), int(top[6:8]), int(top[8:10]), int(top[10:12]), int(top[12:14])
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 60):
        raise AmlError("top not a time")
    for k in ("lt", "lg"):
        v = out[k]
        if v[:1] not in "+-" or len(v) < 2:
            raise AmlError(k + " not signed")
        try:
            float(v)
        except ValueError:
            raise AmlError(k + " not a number")
    if not _digits(out["si"], 15, 15) or not _digits(out["ei"], 15, 16):
        raise AmlError("si/ei digits")
    if not out["mcc"].isdigit() or not out["mnc"].isdigit():
        raise AmlError("mcc/mnc digits")
    return out
