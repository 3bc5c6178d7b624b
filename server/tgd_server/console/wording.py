"""The operator's reading of what the server recorded: timeline entries, signal strength.

The ingest code records events with codes and short technical details (English, for
the logs and the API: `AML pm=G lat=… rd=7 m lc=68% top=…Z`). The console shows
them in French and in operator terms. A detail no rule here knows is shown as a
technical detail, apart from the French text, rather than hidden.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime

from . import strings_fr as t

_AML = re.compile(r"AML pm=(?P<m>[GCN])(?: lat=\S+ lon=\S+ rd=(?P<rd>\d+) m"
                  r" lc=(?P<lc>\d+)% top=(?P<top>\S+))?")
_LAST_KNOWN = re.compile(r"\((?P<m>[GCN]), (?P<min>\d+) min before this SMS\)")
_IMEI = re.compile(r"AML ei=(?P<sent>\w*), registered IMEI (?P<known>\w*)")
_LAST_GASP = re.compile(r"battery (?P<mv>\d+) mV")
_SMS_REVIEW = re.compile(r"SMS that is not AML v1")
REPORTED_BY_HANDSET = "reported by the handset"


def _key_values(detail: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in detail.split() if "=" in part)


def _method(code: str) -> str:
    return t.METHOD_LABELS.get(code, code)


def _clock(iso_utc: str, tz: zoneinfo.ZoneInfo) -> str:
    try:
        moment = datetime.strptime(iso_utc, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return iso_utc
    return moment.astimezone(tz).strftime("%H:%M:%S")


def aml_text(detail: str, tz: zoneinfo.ZoneInfo) -> str | None:
    match = _AML.match(detail)
    if match is None:
        return None
    if match["m"] == "N" or match["rd"] is None:
        return t.TIMELINE_AML_NO_FIX
    return t.TIMELINE_AML_FIX.format(method=_method(match["m"]), acc=match["rd"],
                                     confidence=match["lc"], time=_clock(match["top"], tz))


def timeline_text(channel: str, kind: str, detail: str, tz: zoneinfo.ZoneInfo) -> str:
    """One timeline entry in French; `detail` as the ingest code recorded it."""
    if channel == "call" and kind in t.CALL_STATE_LABELS:
        text = f"{t.CHANNEL_LABELS['call']} : {t.CALL_STATE_LABELS[kind]}"
    elif channel == "sms" and kind in t.SMS_STATE_LABELS:
        text = f"{t.TIMELINE_AML_SMS} : {t.SMS_STATE_LABELS[kind]}"
    elif kind == "message":
        kv = _key_values(detail)
        return t.TIMELINE_MESSAGE.format(
            type=t.MESSAGE_TYPE_LABELS.get(kv.get("type", ""), kv.get("type", "?")),
            seq=kv.get("seq", "?"), method=_method(kv.get("fix", "?")))
    elif kind == "repress":  # the button held again while the alarm was open (issue 12)
        return t.TIMELINE_REPRESS.format(n=_key_values(detail).get("press", "?"))
    elif channel == "console" and kind == "acknowledged":
        return t.TIMELINE_ACKNOWLEDGED.format(user=detail.removeprefix("by "))
    elif channel == "console" and kind == "closed":
        user, _, note = detail.removeprefix("by ").partition(": ")
        return t.TIMELINE_CLOSED.format(user=user, note=note)
    elif kind == "aml":
        words = aml_text(detail, tz)
        return f"{t.TIMELINE_KINDS['aml']} : {words}" if words else _unknown(kind, detail)
    elif kind == "last_known_position":
        match = _LAST_KNOWN.search(detail)
        if match is None:
            return t.TIMELINE_KINDS[kind]
        return t.TIMELINE_LAST_KNOWN.format(method=_method(match["m"]), minutes=match["min"])
    elif kind == "aml_imei_mismatch":
        match = _IMEI.match(detail)
        if match is None:
            return t.TIMELINE_KINDS[kind]
        return t.TIMELINE_IMEI.format(sent=match["sent"], known=match["known"])
    elif kind == "last_gasp":
        match = _LAST_GASP.search(detail)
        return t.TIMELINE_LAST_GASP.format(mv=match["mv"]) if match else t.TIMELINE_KINDS[kind]
    elif kind == "sms_review" and (not detail or _SMS_REVIEW.match(detail)):
        return t.TIMELINE_KINDS[kind]
    else:
        return _unknown(kind, detail)
    if detail == REPORTED_BY_HANDSET:
        return f"{text} {t.TIMELINE_REPORTED_BY_HANDSET}"
    return f"{text} — {detail}" if detail else text


def _unknown(kind: str, detail: str) -> str:
    text = t.TIMELINE_KINDS.get(kind) or t.TIMELINE_UNKNOWN.format(kind=kind)
    return t.TIMELINE_TECHNICAL.format(text=text, detail=detail) if detail else text


def signal_text(csq: int | None) -> str:
    """AT+CSQ 0..31 (99: not known) with its unit and what it means for a call."""
    if csq is None:
        return "—"
    if not 0 <= csq <= 31:
        return t.SIGNAL_UNKNOWN
    quality = next(words for lowest, words in t.SIGNAL_QUALITY if csq >= lowest)
    return t.SIGNAL_VALUE.format(csq=csq, dbm=f"−{113 - 2 * csq}", quality=quality)
