"""The campaign's plan generator and replay files (pure: no rig)."""

from __future__ import annotations

import json

import pytest

from tgd_rig.campaign_plan import (
    VOCABULARY,
    PlanError,
    Step,
    generate,
    load_replay,
    replay_document,
    save_replay,
)

TRIGGER_S = 0.6


def test_same_seed_same_plan_and_a_shorter_plan_is_a_prefix():
    assert generate(7, 120, 2) == generate(7, 120, 2)
    assert generate(7, 40, 2) == generate(7, 120, 2)[:40]
    assert generate(7, 120, 2) != generate(8, 120, 2)


def test_every_kind_of_the_vocabulary_comes_up_weighted_like_life():
    steps = generate(1, 4000, 2)
    counts: dict[str, int] = {}
    for s in steps:
        counts[s.kind] = counts.get(s.kind, 0) + 1
    for kind in VOCABULARY:
        assert counts.get(kind, 0) > 0, kind
    # life: more short presses and idle time than power cuts or silent modems
    assert counts["short_press"] > 3 * counts["modem_silent"]
    assert counts["idle"] + counts["short_press"] > counts["hold"] + counts["two_alarms"]


def test_the_module_answer_to_a_second_call_is_drawn_first_for_every_handset():
    steps = generate(5, 10, 3)
    assert [(s.kind, s.device) for s in steps[:3]] == [
        ("second_call_mode", "H1"), ("second_call_mode", "H2"), ("second_call_mode", "H3")]
    modes = {generate(seed, 1, 1)[0].params["mode"] for seed in range(20)}
    assert modes == {"refuse", "hold"}


def test_presses_stay_clear_of_the_trigger_threshold():
    for s in generate(3, 3000, 1, trigger_hold_ms=600):
        if s.kind == "short_press":
            assert 0.0 < s.params["hold_s"] <= TRIGGER_S - 0.2 + 1e-9
        if s.kind in ("hold", "hold_while_open", "hold_during_boot", "two_alarms"):
            assert s.params["hold_s"] >= TRIGGER_S + 0.15 - 1e-9


def test_a_close_or_ack_only_when_the_generator_believes_an_alarm_is_open():
    open_ = False
    for s in generate(11, 2000, 1):
        if s.kind in ("operator_close", "operator_ack"):
            assert open_, s
        if s.kind in ("hold", "hold_during_boot", "two_alarms", "hold_while_open"):
            open_ = True
        if s.kind == "operator_close":
            open_ = False


def test_replay_file_round_trip(tmp_path):
    steps = generate(9, 25, 2)
    path = tmp_path / "replay.json"
    save_replay(path, replay_document(9, steps, 2, "fast", note="why"))
    back = load_replay(path)
    assert back["steps"] == steps and back["seed"] == 9 and back["handsets"] == 2


@pytest.mark.parametrize("content, message", [
    ("not json", "not a replay file"),
    (json.dumps({"format": 99, "steps": []}), "format 1"),
    (json.dumps({"format": 1, "steps": []}), "no steps"),
    (json.dumps({"format": 1, "steps": [{"kind": "dance", "device": "H1"}]}), "unknown kind 'dance'"),
    (json.dumps({"format": 1, "handsets": 1, "steps": [{"kind": "idle", "device": "H2",
                                                        "params": {"gap_s": 1}}]}), "names handset H2"),
])
def test_a_bad_replay_file_is_refused_with_the_reason(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PlanError, match=message):
        load_replay(path)


def test_a_missing_replay_file_is_named():
    with pytest.raises(PlanError, match="no such file"):
        load_replay("/nonexistent/replay.json")


def test_step_text():
    assert str(Step(3, "hold", "H1", {"hold_s": 1.2, "gap_s": 2})) == "#3 H1 hold gap_s=2 hold_s=1.2"


def test_update_steps_are_rare_and_every_bad_release_comes_up():
    from tgd_rig.campaign_plan import BAD_RELEASES

    steps = generate(2, 4000, 1)
    updates = [s for s in steps if s.kind in ("update_offered", "update_bad")]
    assert 0 < len(updates) < len([s for s in steps if s.kind == "idle"]) / 2
    assert {s.params["bad"] for s in steps if s.kind == "update_bad"} == set(BAD_RELEASES)
