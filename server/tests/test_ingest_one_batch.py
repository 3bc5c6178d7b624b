"""One batch of the ingest writer:

- many positions: every `position.added` event names the row that holds its own
  position (the ids are taken by the batch's statement on PostgreSQL and joined to the
  rows by their order, never by RETURNING's order);
- many heartbeats: the roll-out under way is read once for the batch, not once per
  heartbeat (a round trip per message on PostgreSQL)."""

from __future__ import annotations

import time

from sqlalchemy import event, select

from tgd_server import db, ingest
from tgd_server.models import Position, utcnow


def _pending(handset, message: dict) -> ingest._Pending:
    body = handset.encode(message)
    now = time.time()
    ctx = ingest.Context(body=body, signature=handset.sign(body), channel="mqtt",
                         source="test", ingested_at=now, received_at=utcnow(), now=now)
    for step in ingest.BYTE_STEPS:
        step(ctx)
    return ingest._Pending(ctx)


def test_a_batch_of_positions_names_each_position_s_own_row(app, make_handset):
    handsets = [make_handset() for _ in range(4)]
    items = []
    for round_ in range(3):  # three messages per device in one batch, interleaved
        for n, handset in enumerate(handsets):
            fix = {"m": "G", "lat": -22.0 - n / 10 - round_ / 1000, "lon": 166.0 + n / 10,
                   "acc": 5 + n}
            items.append(_pending(handset, handset.message("position", fix=fix)))
    with app.app_context():
        writer = object.__new__(ingest._GroupCommitter)  # the writer's batch, no thread
        writer._factory = db.session_factory()
        writer._write_together(items)
        assert all(item.stored for item in items)
        events = [event for item in items for event in item.ctx.events
                  if event["type"] == "position.added"]
        assert len(events) == 12
        with db.session_factory()() as session:
            for event in events:
                row = session.scalar(select(Position).where(Position.id == event["position_id"]))
                assert (row.device_id, row.lat, row.lon, row.acc_m) == (
                    event["device_id"], event["lat"], event["lon"], event["acc_m"])
        assert len({event["position_id"] for event in events}) == 12


def test_a_batch_of_heartbeats_reads_the_roll_out_once(app, make_handset):
    handsets = [make_handset() for _ in range(5)]
    items = [_pending(h, h.message("heartbeat")) for _ in range(2) for h in handsets]
    reads = []

    def count(_conn, _cursor, statement, *_args) -> None:
        if "FROM rollouts" in statement:
            reads.append(statement)

    with app.app_context():
        engine = db.engine()
        event.listen(engine, "before_cursor_execute", count)
        try:
            writer = object.__new__(ingest._GroupCommitter)
            writer._factory = db.session_factory()
            writer._write_together(items)
        finally:
            event.remove(engine, "before_cursor_execute", count)
    assert all(item.stored for item in items)
    assert len(reads) == 1, f"{len(reads)} reads of the roll-out for 10 heartbeats"
