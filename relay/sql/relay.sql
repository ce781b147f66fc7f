-- The hub's reads, of the relay_events view (migrations/sql): log entries
-- as events, with their rows' current state; stale entries only move the
-- cursor.

-- name: Head
SELECT last_seq FROM bellhop.relay_state;

-- name: Resume
-- The head, and the recipient's prune horizon: a resume from below it may
-- have missed one of the recipient's events. The horizon is the recipient's
-- own, or the global floor old ones are folded into, whichever is higher.
SELECT s.last_seq, greatest(s.pruned_seq, h.seq)
FROM bellhop.relay_state AS s
LEFT JOIN bellhop.relay_horizon AS h
    ON h.tenant_id = $1 AND h.notifiable_type = $2 AND h.notifiable_id = $3;

-- name: Tail
-- Everything logged after the hub's cursor, in order, with the writers'
-- trace context for the push's span.
SELECT seq, current, id, tenant_id, notifiable_type, notifiable_id, type, op,
       sse, database_key, read_at, live AS via_sse, changed, traceparent
FROM bellhop.relay_events
WHERE seq > $1
ORDER BY seq
LIMIT $2;

-- name: Replay
-- One recipient's events in (from, to], for a stream resuming from
-- Last-Event-ID.
SELECT seq, current, id, tenant_id, notifiable_type, notifiable_id, type, op,
       sse, database_key, read_at, live AS via_sse, changed
FROM bellhop.relay_events
WHERE tenant_id = $1 AND notifiable_type = $2 AND notifiable_id = $3
  AND seq > $4 AND seq <= $5
ORDER BY seq
LIMIT $6;

-- name: BacklogPlan
-- Transaction-local, before Backlog in the same implicit transaction: the
-- stamp's planner settings (see Lock in worker/sql), so that a fresh bulk
-- insert, which the statistics do not know yet, is read through the xid
-- index and not by a scan of the whole table.
SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true),
       set_config('jit', 'off', true);

-- name: Backlog
-- What the relay has not stamped yet, for /metrics: the committed row
-- versions the cursor has not seen (the relay_pending view, which scans the
-- whole table), read as the stamp and HasPending read them: through the xid
-- index, in the gaps between the transactions still running (whose rows
-- are not committed, so not pending, and would cost a walk over each of
-- them), plus seen's running xids that have ended. A round in progress has
-- logged the rows up to (next_xid, next_id) of next already. The cost is
-- one index entry and heap tuple per pending row: nothing when the relay
-- keeps up. The age is the oldest row's updated_at (its writing
-- transaction's start) by the database's clock.
WITH s AS (
    SELECT seen, next, next_xid, next_id, pg_current_snapshot() AS now,
           (pg_snapshot_xmax(seen)::text::numeric - 1)::text::xid8 AS below_xmax
    FROM bellhop.relay_state
), gaps AS (
    SELECT p AS lo, coalesce(lead(p) OVER (ORDER BY p), pg_snapshot_xmax((SELECT now FROM s))) AS hi
    FROM (SELECT below_xmax AS p FROM s
          UNION ALL
          SELECT x FROM s, pg_snapshot_xip(s.now) AS x WHERE x > s.below_xmax) AS points
), pending AS (
    SELECT n.xid, n.id, n.updated_at
    FROM gaps CROSS JOIN LATERAL (
        SELECT xid, id, updated_at FROM bellhop.notifications
        WHERE xid > gaps.lo AND xid < gaps.hi) AS n
    UNION ALL
    SELECT xid, id, updated_at FROM bellhop.notifications
    WHERE xid = ANY (ARRAY(SELECT x FROM s, pg_snapshot_xip(s.seen) AS x
                           WHERE pg_visible_in_snapshot(x, s.now)))
)
SELECT count(*),
       coalesce(extract(epoch FROM clock_timestamp() - min(p.updated_at)), 0)::float8
FROM pending AS p, s
WHERE NOT (s.next IS NOT NULL AND pg_visible_in_snapshot(p.xid, s.next)
           AND (p.xid, p.id) <= (s.next_xid, s.next_id));
