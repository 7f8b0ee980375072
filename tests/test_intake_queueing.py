"""Under a burst, intake answers at the speed of PostgreSQL: once the hand-off backlog is
over INTAKE_QUEUE_BACKLOG, an order's workflow starts are left to the relays at once
instead of being delivered by the request."""

from __future__ import annotations

import sqlalchemy as sa

from tests.support import api_client, make_product, order_body, rows, wait_settled


async def gaps(db, order_id: str) -> list[float]:
    found = await rows(db, """
        SELECT extract(epoch FROM o.available_at - o.created_at) AS gap
        FROM outbox o JOIN order_lines l ON l.id = o.line_id
        WHERE l.order_id = :id AND o.kind = 'line.start'""", id=order_id)
    return [float(r.gap) for r in found]


async def test_a_backlog_over_the_limit_leaves_workflow_starts_to_the_relay(
        settings, db, temporal_env, worker):
    from api.app import create_app

    queued = settings.model_copy(update={"intake_queue_backlog": 0})
    app = create_app(queued, engine=db, client=temporal_env.client)
    async with api_client(app, db, queued) as api:
        await make_product(api, "Q-1")
        calm = (await api.post("/orders", json=order_body("Q-CALM", [("Q-1", 1)]))).json()
        await wait_settled(db)
        async with db.begin() as conn:  # a backlog: one message not yet delivered
            await conn.execute(sa.text(
                "INSERT INTO outbox (kind, line_id, payload, available_at) "
                "VALUES ('line.start', gen_random_uuid(), '{}', now() + interval '1 hour')"))
        app.state.services.backlog_seen = (0.0, 0)
        burst = (await api.post("/orders", json=order_body("Q-BURST", [("Q-1", 1)]))).json()
        # Without a backlog the request delivers its own starts (the relay's grace waits);
        # with one they are the relay's at once.
        assert all(g >= queued.outbox_inline_grace_seconds - 0.01 for g in await gaps(db, calm["id"]))
        assert all(g < 0.5 for g in await gaps(db, burst["id"]))
        async with db.begin() as conn:
            await conn.execute(sa.text("DELETE FROM outbox WHERE available_at > now() + "
                                       "interval '30 minutes'"))
        await wait_settled(db)
    started = await rows(db, "SELECT delivered_at FROM outbox o JOIN order_lines l "
                             "ON l.id = o.line_id WHERE l.order_id = :id", id=burst["id"])
    assert started and all(s.delivered_at is not None for s in started)
