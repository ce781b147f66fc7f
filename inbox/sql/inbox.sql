-- The read side. Every statement names the recipient (tenant, type, id), so
-- an id that belongs to someone else matches nothing.

-- name: UnreadCount
-- Counts at most $4 rows: the count stays fast for a recipient with a huge
-- backlog, and a badge shows "99+" long before that anyway.
SELECT count(*) FROM (
    SELECT 1 FROM bellhop.notifications
    WHERE tenant_id = $1 AND notifiable_type = $2 AND notifiable_id = $3
      AND read_at IS NULL AND deleted_at IS NULL AND 'database' = ANY (channels)
    LIMIT $4
) AS capped;

-- name: List
-- Newest first, keyset-paginated on (created_at, id): rows that arrive while
-- a client pages never shift the pages it has not read yet.
SELECT id::text, type, data, database_key, read_at, created_at, updated_at
FROM bellhop.notifications
WHERE tenant_id = $1 AND notifiable_type = $2 AND notifiable_id = $3
  AND deleted_at IS NULL AND 'database' = ANY (channels)
  AND (created_at, id) < ($4::timestamptz, $5::uuid)
  AND (NOT $6::bool OR read_at IS NULL)
  AND (cardinality($7::text[]) = 0 OR type = ANY ($7::text[]))
ORDER BY created_at DESC, id DESC
LIMIT $8;

-- name: MarkRead
-- Marking a read row read again changes nothing, so it pushes nothing.
UPDATE bellhop.notifications SET read_at = coalesce(read_at, now())
WHERE id = $1 AND tenant_id = $2 AND notifiable_type = $3 AND notifiable_id = $4
  AND deleted_at IS NULL AND 'database' = ANY (channels)
RETURNING id::text, type, data, database_key, read_at, created_at, updated_at;

-- name: MarkUnread
UPDATE bellhop.notifications SET read_at = NULL
WHERE id = $1 AND tenant_id = $2 AND notifiable_type = $3 AND notifiable_id = $4
  AND deleted_at IS NULL AND 'database' = ANY (channels)
RETURNING id::text, type, data, database_key, read_at, created_at, updated_at;

-- name: Quiet
-- Transaction-local: the row trigger leaves the rows of the next statement
-- as they are (not pending), so a mark-all-read pushes one event, not one
-- per row.
SELECT set_config('bellhop.quiet', $1, true);

-- name: MarkAllRead
UPDATE bellhop.notifications SET read_at = now()
WHERE tenant_id = $1 AND notifiable_type = $2 AND notifiable_id = $3
  AND read_at IS NULL AND deleted_at IS NULL AND 'database' = ANY (channels);

-- name: InsertReadAll
-- The one event of a mark-all-read: a live-only row the prune job removes
-- once it is past the replay window.
INSERT INTO bellhop.notifications
    (tenant_id, notifiable_type, notifiable_id, type, channels, op)
VALUES ($1, $2, $3, 'bellhop.read_all', '{sse}', 'read_all');

-- name: Delete
-- Soft: the row stays, pending, until the relay has pushed the deletion and
-- the replay window has passed; the prune job removes it then.
UPDATE bellhop.notifications SET deleted_at = now()
WHERE id = $1 AND tenant_id = $2 AND notifiable_type = $3 AND notifiable_id = $4
  AND deleted_at IS NULL AND 'database' = ANY (channels);
