-- The hub's reads. Log entries are events: the relay pushes a row's current
-- state under the seq of its latest entry. An entry whose xid is no longer
-- the row's (the row changed again, or is gone) is stale: it comes back with
-- current = false and empty fields, so that paging by seq still moves on.

-- name: Head
SELECT last_seq, pruned_seq FROM bellhop.relay_state;

-- name: Tail
-- Everything logged after the hub's cursor, in order.
SELECT l.seq, n.id IS NOT NULL, coalesce(n.id::text, ''), l.tenant_id, l.notifiable_type, l.notifiable_id,
       coalesce(n.type, ''), coalesce(n.op, ''), n.sse, n.database_key, n.read_at,
       coalesce('sse' = ANY (n.channels), false), coalesce(n.updated_at, l.logged_at)
FROM bellhop.relay_log AS l
LEFT JOIN bellhop.notifications AS n ON n.id = l.id AND n.xid = l.xid
WHERE l.seq > $1
ORDER BY l.seq
LIMIT $2;

-- name: Replay
-- One recipient's events in (from, to], for a stream resuming from
-- Last-Event-ID.
SELECT l.seq, n.id IS NOT NULL, coalesce(n.id::text, ''), l.tenant_id, l.notifiable_type, l.notifiable_id,
       coalesce(n.type, ''), coalesce(n.op, ''), n.sse, n.database_key, n.read_at,
       coalesce('sse' = ANY (n.channels), false), coalesce(n.updated_at, l.logged_at)
FROM bellhop.relay_log AS l
LEFT JOIN bellhop.notifications AS n ON n.id = l.id AND n.xid = l.xid
WHERE l.tenant_id = $1 AND l.notifiable_type = $2 AND l.notifiable_id = $3
  AND l.seq > $4 AND l.seq <= $5
ORDER BY l.seq
LIMIT $6;
