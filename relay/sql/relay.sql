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
-- Everything logged after the hub's cursor, in order.
SELECT seq, current, id, tenant_id, notifiable_type, notifiable_id, type, op,
       sse, database_key, read_at, live AS via_sse, changed, critical
FROM bellhop.relay_events
WHERE seq > $1
ORDER BY seq
LIMIT $2;

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
