-- The hub's reads. Rows are events: the relay pushes a row's current state
-- under its relay_seq; a row changed again gets a new relay_seq.

-- name: Head
SELECT last_seq, pruned_seq FROM bellhop.relay_state;

-- name: Tail
-- Everything stamped after the hub's cursor, in order.
SELECT relay_seq, id::text, tenant_id, notifiable_type, notifiable_id, type, op,
       sse, database_key, read_at, 'sse' = ANY (channels), updated_at
FROM bellhop.notifications
WHERE relay_seq > $1
ORDER BY relay_seq
LIMIT $2;

-- name: Replay
-- One recipient's events in (from, to], for a stream resuming from
-- Last-Event-ID.
SELECT relay_seq, id::text, tenant_id, notifiable_type, notifiable_id, type, op,
       sse, database_key, read_at, 'sse' = ANY (channels), updated_at
FROM bellhop.notifications
WHERE tenant_id = $1 AND notifiable_type = $2 AND notifiable_id = $3
  AND relay_seq > $4 AND relay_seq <= $5
ORDER BY relay_seq
LIMIT $6;
