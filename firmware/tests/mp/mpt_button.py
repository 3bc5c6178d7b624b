# Button timings on a simulated clock (10 ms polls).
from tgd.button import Button, DOWN, UP, TRIGGER


def run(button, samples, start=0, step=10):
    """samples: list of (duration_ms, level). Returns [(t, event)]."""
    t = start
    out = []
    for duration, level in samples:
        end = t + duration
        while t < end:
            ev = button.update(level, t)
            if ev:
                out.append((t, ev))
            t += step
    return out


def triggers(events):
    return [t for t, e in events if e == TRIGGER]


def test_hold_two_seconds_triggers_once():
    b = Button(2000)
    ev = run(b, [(100, 0), (5000, 1), (100, 0)])
    assert triggers(ev) == [2100], ev
    assert [e for _, e in ev] == [DOWN, TRIGGER, UP]


def test_exactly_hold_ms_triggers_and_just_under_does_not():
    b = Button(2000)
    # the contact is closed from t=100 to t=2100 (2000 ms), sampled at 2100 still closed
    ev = run(b, [(100, 0), (2010, 1), (200, 0)])
    assert triggers(ev) == [2100]
    b = Button(2000)
    ev = run(b, [(100, 0), (1990, 1), (200, 0)])
    assert triggers(ev) == [], ev


def test_short_presses_never_trigger():
    b = Button(2000)
    ev = run(b, [(100, 0)] + [(1500, 1), (300, 0)] * 10)
    assert triggers(ev) == []
    assert len([e for _, e in ev if e == DOWN]) == 10


def test_bounces_never_trigger():
    b = Button(2000)
    # 10 s of contact chatter: 20 ms closed, 10 ms open
    ev = run(b, [(100, 0)] + [(20, 1), (10, 0)] * 333)
    assert triggers(ev) == []
    assert ev == [], ev  # no debounced edge at all


def test_bounces_at_press_then_hold_triggers_from_stable_press():
    b = Button(2000)
    ev = run(b, [(100, 0), (10, 1), (10, 0), (10, 1), (10, 0), (3000, 1)])
    # the stable press started at t=140
    assert triggers(ev) == [2140], ev


def test_release_restarts_the_hold_timer():
    b = Button(2000)
    ev = run(b, [(100, 0), (1500, 1), (100, 0), (1500, 1), (100, 0)])
    assert triggers(ev) == []


def test_stuck_closed_at_boot_never_triggers():
    b = Button(2000)
    ev = run(b, [(60000, 1)])
    assert ev == []
    # once released and pressed again, it works
    ev = run(b, [(100, 0), (2500, 1)], start=60000)
    assert triggers(ev) == [62100], ev


def test_held_through_an_update_reset_counts_from_the_boot():
    b = Button(2000, armed_at_boot=True)  # main.boot_slot: the firmware's own reset
    ev = run(b, [(2500, 1), (100, 0)])
    assert triggers(ev) == [2000], ev
    b = Button(2000, armed_at_boot=True)
    assert triggers(run(b, [(1500, 1), (100, 0)])) == []  # short: still no alarm


def test_one_trigger_per_press():
    b = Button(2000)
    ev = run(b, [(100, 0), (10000, 1)])
    assert len(triggers(ev)) == 1


def test_ticks_wraparound():
    import time
    b = Button(2000)
    start = time.ticks_add(0, -500)  # a few hundred ms before the ticks counter wraps
    t = start
    out = []
    for level, ms in ((0, 100), (1, 2500)):
        for _ in range(ms // 10):
            e = b.update(level, t)
            if e:
                out.append(e)
            t = time.ticks_add(t, 10)
    assert TRIGGER in out
