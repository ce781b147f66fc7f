-- The hub's reads, of the relay_events view (migrations/sql): log entries
-- as events, with their rows' current state; stale entries only move the
-- cursor.

-- name: Head
-- And the key of the relayed NOTIFY's MAC (see 00011).
SELECT last_seq, notify_key FROM bellhop.relay_state;

-- name: RegisterListener
-- On the hub's LISTEN connection, at each (re)connect, before its LISTEN
-- and its read: a session lock, shared, held until the connection ends. Stamps
-- NOTIFY the relayed channel only while a process other than the stamping
-- one holds it (Listeners in worker/sql; $1 is sqlq.ListenerLock). And a
-- hello on that channel ($3, $4: joinedNote), by which the stamping
-- process's hub learns of it at once (see audience in worker/stamp.go).
SELECT pg_advisory_lock_shared($1, hashtext($2)), pg_notify($3, $4);

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
       sse, database_key, read_at, live AS via_sse, changed, traceparent, critical
FROM bellhop.relay_events
WHERE seq > $1
ORDER BY seq
LIMIT $2;

-- name: Recipients
-- The entries of some recipients in (before, head]: one stamp's batch, read
-- by a replica that has streams for only these of its recipients.
SELECT seq, current, id, tenant_id, notifiable_type, notifiable_id, type, op,
       sse, database_key, read_at, live AS via_sse, changed, traceparent, critical
FROM bellhop.relay_events
WHERE (tenant_id, notifiable_type, notifiable_id) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
  AND seq > $4 AND seq <= $5
ORDER BY seq;

-- name: Replay
-- One recipient's events in (from, to], for a stream resuming from
-- Last-Event-ID.
SELECT seq, current, id, tenant_id, notifiable_type, notifiable_id, type, op,
       sse, database_key, read_at, live AS via_sse, changed, critical
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
-- versions the cursor has not seen (the relay_pending view, which reads
-- the whole table), read as the stamp and HasPending read them: through
-- the xid index, in the gaps between the transactions still running (whose
-- rows are not committed, so not pending, and would cost a walk over each
-- of them), plus seen's running xids that have ended; a round in progress
-- has logged the rows of next up to (next_xid, next_id) already. Each row
-- costs an index entry and a heap tuple (about 10 µs), so at most $1 are
-- read, in xid order: the count stops there, and the oldest is the oldest
-- of those (transactions that began first mostly wrote first). Nothing to
-- read when the relay keeps up. The age is the row's updated_at (its
-- writing transaction's start) by the database's clock.
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
    (SELECT n.updated_at
     FROM (SELECT * FROM gaps ORDER BY lo) AS g
     CROSS JOIN LATERAL (
         SELECT xid, updated_at FROM bellhop.notifications AS t
         WHERE t.xid > g.lo AND t.xid < g.hi
           AND NOT ((SELECT next FROM s) IS NOT NULL AND pg_visible_in_snapshot(t.xid, (SELECT next FROM s))
                    AND (t.xid, t.id) <= ((SELECT next_xid FROM s), (SELECT next_id FROM s)))
         ORDER BY t.xid
         LIMIT $1) AS n
     ORDER BY g.lo, n.xid
     LIMIT $1)
    UNION ALL
    (SELECT t.updated_at FROM bellhop.notifications AS t
     WHERE t.xid = ANY (ARRAY(SELECT x FROM s, pg_snapshot_xip(s.seen) AS x
                              WHERE pg_visible_in_snapshot(x, s.now)))
       AND NOT ((SELECT next FROM s) IS NOT NULL AND pg_visible_in_snapshot(t.xid, (SELECT next FROM s))
                AND (t.xid, t.id) <= ((SELECT next_xid FROM s), (SELECT next_id FROM s)))
     LIMIT $1)
)
SELECT least(count(*), $1),
       coalesce(extract(epoch FROM clock_timestamp() - min(updated_at)), 0)::float8
FROM pending;
