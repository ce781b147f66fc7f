-- The relay's own statements: stamping, the wake flag, pruning.

-- name: HasPending
SELECT EXISTS (SELECT 1 FROM bellhop.notifications WHERE relay_seq IS NULL);

-- name: PlanStamp
-- Transaction-local. Right after a bulk insert the table's statistics still
-- say the pending set is tiny, and the planner picks a bitmap scan and sorts
-- every pending row to take the first $1: 240 ms per batch at 100,000
-- pending, where the pending index, already in order, takes 3 ms.
SELECT set_config('enable_bitmapscan', 'off', true);

-- name: Lock
-- Serializes stamping across every relay replica until the transaction ends,
-- so relay_seq is handed out, and committed, in order.
SELECT pg_advisory_xact_lock($1, hashtext($2));

-- name: Stamp
-- Gives up to $1 pending rows the next relay_seq values, oldest change first,
-- moves the head and, if it stamped any, announces the new head on channel
-- $2 (delivered at commit). Returns how many rows, and the new head.
WITH batch AS (
    SELECT id, row_number() OVER (ORDER BY updated_at, id) AS n
    FROM bellhop.notifications
    WHERE relay_seq IS NULL
    ORDER BY updated_at, id
    LIMIT $1
), head AS (
    UPDATE bellhop.relay_state
    SET last_seq = last_seq + (SELECT count(*) FROM batch)
    WHERE EXISTS (SELECT 1 FROM batch)
    RETURNING last_seq - (SELECT count(*) FROM batch) AS base, last_seq
), stamped AS (
    UPDATE bellhop.notifications AS t
    SET relay_seq = head.base + batch.n
    FROM batch, head
    WHERE t.id = batch.id
    RETURNING t.relay_seq
)
SELECT s.n, s.head
FROM (SELECT count(*) AS n, coalesce(max(relay_seq), 0) AS head FROM stamped) AS s
LEFT JOIN LATERAL (SELECT pg_notify($2, s.head::text) WHERE s.n > 0) AS announced ON true;

-- name: SetWake
-- Non-transactional: writers see the flip at once.
SELECT setval($1::regclass, $2);

-- name: Snapshot
SELECT pg_current_snapshot()::text;

-- name: Settled
-- True once no transaction that was running at the snapshot still is: each
-- of them either committed (its rows are visible now) or saw the wake flag.
SELECT NOT EXISTS (
    SELECT 1 FROM pg_snapshot_xip($1::pg_snapshot) AS x
    WHERE pg_xact_status(x) = 'in progress'
);

-- name: Prune
-- Deletes, $3 at a time: deleted rows and live-only rows once past the
-- replay window ($1), read rows past the retention ($2). Remembers the
-- highest relay_seq deleted: a client resuming from below it must refetch.
WITH doomed AS (
    SELECT id FROM bellhop.notifications
    WHERE relay_seq IS NOT NULL AND (
           (deleted_at IS NOT NULL AND deleted_at < now() - $1::interval)
        OR (NOT 'database' = ANY (channels) AND updated_at < now() - $1::interval)
        OR (read_at IS NOT NULL AND read_at < now() - $2::interval))
    LIMIT $3
), gone AS (
    DELETE FROM bellhop.notifications AS t USING doomed
    WHERE t.id = doomed.id
    RETURNING t.relay_seq
), horizon AS (
    UPDATE bellhop.relay_state
    SET pruned_seq = greatest(pruned_seq, (SELECT max(relay_seq) FROM gone))
    WHERE EXISTS (SELECT 1 FROM gone)
)
SELECT count(*) FROM gone;
