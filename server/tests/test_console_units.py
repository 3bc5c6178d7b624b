"""The console's pure helpers: numbers, rate-limit arithmetic, SSE framing, CSP, flags."""

from __future__ import annotations

import io
import wave
import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest

from tgd_server.console import access, login_limit, phone, queries, sound, stream, wording
from tgd_server.console.audit_views import RecentViews
from tgd_server.events import Subscription
from tgd_server.models import Device


@pytest.mark.parametrize("typed", ["+687751001", "751001", "75 10 01", "75.10.01",
                                   "00687 75 10 01", "+687-75-10-01", " (+687) 751001 "])
def test_new_caledonian_numbers_normalize_to_six_digits(typed):
    assert phone.normalize(typed) == "751001"


@pytest.mark.parametrize("typed", ["", "12", "abc", "75 10 01; drop", "+" + "9" * 20])
def test_what_is_not_a_number_is_refused(typed):
    with pytest.raises(phone.BadNumber):
        phone.normalize(typed)


def test_foreign_numbers_keep_their_country_code():
    assert phone.normalize("+33 6 12 34 56 78") == "33612345678"
    assert not phone.same_number("+33612345678", "751001")


NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def test_retry_after_counts_only_failures_in_the_window():
    four = [NOW - timedelta(seconds=s) for s in (200, 150, 100, 50)]
    assert login_limit.retry_after(four, NOW) == 0
    five = [NOW - timedelta(seconds=400)] + four + [NOW - timedelta(seconds=10)]
    # the fifth most recent failure (200 s ago) unlocks at 300 s: 100 s to wait
    assert login_limit.retry_after(five, NOW) == pytest.approx(100)
    assert login_limit.retry_after(five, NOW + timedelta(seconds=101)) == 0


def test_sse_frames_carry_only_ids_and_state():
    text = stream.format_event({"type": "position.added", "alarm_id": 3, "device_id": "NC1",
                                "lat": -22.1, "special_number": "+687751001"})
    assert text == 'event: position.added\ndata: {"type":"position.added","alarm_id":3,' \
                   '"device_id":"NC1"}\n\n'


def test_event_stream_sends_keepalives_and_closes_its_subscription():
    sub = Subscription()
    frames = stream.event_stream(sub, keepalive_s=0.01, max_s=60)
    assert next(frames).startswith("retry: ")
    assert next(frames) == ": keep-alive\n\n"
    sub._offer({"type": "alarm.created", "alarm_id": 1})
    assert next(frames).startswith("event: alarm.created\n")
    closed = []
    sub.close = lambda: closed.append(True)
    frames.close()
    assert closed == [True]


def test_a_page_that_fell_behind_is_told_to_resync():
    sub = Subscription()
    frames = stream.event_stream(sub, keepalive_s=0.01, max_s=60)
    next(frames)
    sub._offer({"type": "alarm.updated", "alarm_id": 1})
    sub.dropped += 3  # the queue was full for three events
    assert next(frames).startswith("event: bus.resync\n")
    assert next(frames).startswith("event: alarm.updated\n")
    assert next(frames) == ": keep-alive\n\n"
    frames.close()


@pytest.mark.parametrize("url,origin", [
    ("https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png", "https://*.tile.openstreetmap.org"),
    ("http://127.0.0.1:8081/tiles/{z}/{x}/{y}.png", "http://127.0.0.1:8081"),
    ("", None), ("javascript:alert(1)", None), ("/relative/{z}.png", None),
])
def test_tile_origin_for_the_csp(url, origin):
    assert access.tile_origin(url) == origin


@pytest.mark.parametrize("target,safe", [
    ("/alarmes/3", "/alarmes/3"), ("/alarmes?", "/alarmes"), ("https://evil.example/", None),
    ("//evil.example/x", None), ("alarmes", None), (None, None),
])
def test_only_local_paths_follow_a_login(target, safe):
    assert access.safe_next(target) == safe


def test_alert_sound_is_a_short_valid_wav():
    with wave.open(io.BytesIO(sound.alert_wav())) as wav:
        seconds = wav.getnframes() / wav.getframerate()
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
    assert 0.5 < seconds < 2.0


NOUMEA = zoneinfo.ZoneInfo("Pacific/Noumea")


@pytest.mark.parametrize("channel,kind,detail,expected", [
    ("call", "alerting", "reported by the handset", "Appel : sonnerie (signalé par l'appareil)"),
    ("sms", "delivered", "reported by the handset",
     "SMS d'alerte (AML) : remis (signalé par l'appareil)"),
    ("http", "message", "type=alarm seq=12 fix=C call=dialing",
     "Message « alarme » n° 12 reçu, position : cellule"),
    ("console", "acknowledged", "by agent.dupont", "Prise en charge par agent.dupont"),
    ("console", "closed", "by agent.dupont: Personne en sécurité.",
     "Clôture par agent.dupont : Personne en sécurité."),
    ("sms", "aml", "AML pm=G lat=-22.27631 lon=166.45772 rd=7 m lc=68% top=2026-12-01T01:02:03Z",
     "SMS d'alerte (AML) reçu : position GNSS, précision ±7 m (fiabilité 68 %), "
     "point de 12:02:03"),
    ("sms", "aml", "AML pm=N (no position)", "SMS d'alerte (AML) reçu : sans position"),
    ("sms", "last_known_position",
     "AML without position: last known position of the handset (C, 12 min before this SMS)",
     "SMS sans position : la dernière position connue de l'appareil est affichée "
     "(cellule, prise 12 min avant ce SMS)"),
    ("sms", "sms_review", "SMS that is not AML v1 (bad_length), kept for review",
     "SMS non conforme reçu de l'appareil (à vérifier)"),
    ("http", "last_gasp", "battery 3301 mV: the handset is switching off",
     "Dernier message : batterie à 3301 mV, l'appareil s'éteint"),
    ("button", "repress", "press=3",
     "Bouton d'alarme maintenu à nouveau (appui n° 3) : l'alarme ouverte est relancée"),
    ("mqtt", "something_new", "", "événement « something_new »"),
])
def test_timeline_reads_in_french(channel, kind, detail, expected):
    assert wording.timeline_text(channel, kind, detail, NOUMEA) == expected


@pytest.mark.parametrize("csq,expected", [
    (21, "21/31 (−71 dBm, excellent)"), (15, "15/31 (−83 dBm, bon)"),
    (10, "10/31 (−93 dBm, moyen)"), (3, "3/31 (−107 dBm, faible)"),
    (0, "0/31 (−113 dBm, très faible)"), (99, "inconnu (99/31)"), (None, "—"),
])
def test_signal_has_a_unit_and_a_meaning(csq, expected):
    assert wording.signal_text(csq) == expected


def _device(**kw) -> Device:
    base = dict(id="NC1", special_number="+687751001", heartbeat_interval_s=1800,
                low_battery_mv=3550, low_battery=False, battery_mv=3900,
                created_at=NOW - timedelta(days=10), last_seen_at=NOW - timedelta(minutes=5),
                last_heartbeat_at=None, last_fix_at=NOW - timedelta(minutes=5), last_gasp_at=None)
    base.update(kw)
    return Device(**base)


@pytest.mark.parametrize("changes,flags", [
    ({}, []),
    ({"last_seen_at": NOW - timedelta(seconds=2.5 * 1800 + 1)}, ["silent"]),
    ({"last_seen_at": NOW - timedelta(seconds=2.5 * 1800 - 60)}, []),
    ({"last_seen_at": None}, ["never_seen"]),
    ({"battery_mv": 3500}, ["low_battery"]),
    ({"last_fix_at": NOW - timedelta(days=2)}, ["stale_fix"]),
    ({"last_fix_at": None}, ["stale_fix"]),
    ({"last_gasp_at": NOW - timedelta(minutes=5)}, ["switched_off"]),
    ({"last_gasp_at": NOW - timedelta(days=1)}, []),  # it has spoken since
])
def test_device_flags(changes, flags):
    assert queries.device_flags(_device(**changes), NOW.timestamp()) == flags


def test_recent_views_record_each_object_once_per_window():
    now = [1000.0]
    views = RecentViews(window_s=300, clock=lambda: now[0])
    assert views.fresh(1, "view_alarm", "alarm", [1, 2]) == ["1", "2"]
    now[0] += 299
    assert views.fresh(1, "view_alarm", "alarm", [1, 2, 3]) == ["3"]
    assert views.fresh(2, "view_alarm", "alarm", [1]) == ["1"]  # another user
    assert views.fresh(1, "view_case", "case", [1]) == ["1"]  # another action
    now[0] += 1
    assert views.fresh(1, "view_alarm", "alarm", [1, 2, 3]) == ["1", "2"]
