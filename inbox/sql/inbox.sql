-- The read side. Every statement names the recipient (tenant, type, id), so
-- an id that belongs to someone else matches nothing.

-- name: UnreadCount
-- The unread and the unseen count, each of at most $4 rows: the count
-- stays fast for a recipient with a huge backlog, and a badge shows "99+"
-- long before that anyway. Archived and expired rows are not counted, nor
-- types the recipient muted for the database channel (unless critical).
-- Each count's two branches are gated by a one-time filter: a recipient
-- who muted nothing (the usual case) is counted from the unread (unseen)
-- index alone, without reading a row.
WITH m AS (
    SELECT EXISTS (SELECT 1 FROM bellhop.preferences AS p
                   WHERE p.tenant_id = $1 AND p.notifiable_type = $2 AND p.notifiable_id = $3
                     AND p.channel = 'database' AND NOT p.enabled) AS muting
)
SELECT (SELECT count(*) FROM (
            SELECT 1 FROM bellhop.notifications
            WHERE tenant_id = $1 AND notifiable_type = $2 AND notifiable_id = $3
              AND read_at IS NULL AND deleted_at IS NULL AND archived_at IS NULL
              AND 'database' = ANY (channels)
              AND (expires_at IS NULL OR expires_at > now())
              AND NOT (SELECT muting FROM m)
            UNION ALL
            SELECT 1 FROM bellhop.notifications AS n
            WHERE n.tenant_id = $1 AND n.notifiable_type = $2 AND n.notifiable_id = $3
              AND n.read_at IS NULL AND n.deleted_at IS NULL AND n.archived_at IS NULL
              AND 'database' = ANY (n.channels)
              AND (n.expires_at IS NULL OR n.expires_at > now())
              AND (SELECT muting FROM m)
              AND (n.critical OR coalesce(
                  (SELECT p.enabled FROM bellhop.preferences AS p
                   WHERE p.tenant_id = $1 AND p.notifiable_type = $2 AND p.notifiable_id = $3
                     AND p.channel = 'database' AND p.type = n.type),
                  (SELECT p.enabled FROM bellhop.preferences AS p
                   WHERE p.tenant_id = $1 AND p.notifiable_type = $2 AND p.notifiable_id = $3
                     AND p.channel = 'database' AND p.type = '*'),
                  true))
            LIMIT $4) AS c) AS unread,
       (SELECT count(*) FROM (
            SELECT 1 FROM bellhop.notifications
            WHERE tenant_id = $1 AND notifiable_type = $2 AND notifiable_id = $3
              AND seen_at IS NULL AND deleted_at IS NULL AND archived_at IS NULL
              AND 'database' = ANY (channels)
              AND (expires_at IS NULL OR expires_at > now())
              AND NOT (SELECT muting FROM m)
            UNION ALL
            SELECT 1 FROM bellhop.notifications AS n
            WHERE n.tenant_id = $1 AND n.notifiable_type = $2 AND n.notifiable_id = $3
              AND n.seen_at IS NULL AND n.deleted_at IS NULL AND n.archived_at IS NULL
              AND 'database' = ANY (n.channels)
              AND (n.expires_at IS NULL OR n.expires_at > now())
              AND (SELECT muting FROM m)
              AND (n.critical OR coalesce(
                  (SELECT p.enabled FROM bellhop.preferences AS p
                   WHERE p.tenant_id = $1 AND p.notifiable_type = $2 AND p.notifiable_id = $3
                     AND p.channel = 'database' AND p.type = n.type),
                  (SELECT p.enabled FROM bellhop.preferences AS p
                   WHERE p.tenant_id = $1 AND p.notifiable_type = $2 AND p.notifiable_id = $3
                     AND p.channel = 'database' AND p.type = '*'),
                  true))
            LIMIT $4) AS c) AS unseen;

-- name: List
-- Newest first, keyset-paginated on (created_at, id): rows that arrive while
-- a client pages never shift the pages it has not read yet. $9: archived
-- rows are left out ('exclude'), kept ('include') or the only ones ('only').
-- Expired rows are gone. Types the recipient muted for the database channel
-- are left out (unless critical); the preference lookups run only for a
-- recipient who muted something.
SELECT id::text, type, data, database_key, read_at, seen_at, archived_at, expires_at, created_at, updated_at, critical
FROM bellhop.notifications AS n
WHERE tenant_id = $1 AND notifiable_type = $2 AND notifiable_id = $3
  AND deleted_at IS NULL AND 'database' = ANY (channels)
  AND (expires_at IS NULL OR expires_at > now())
  AND (created_at, id) < ($4::timestamptz, $5::uuid)
  AND (NOT $6::bool OR read_at IS NULL)
  AND (cardinality($7::text[]) = 0 OR type = ANY ($7::text[]))
  AND CASE $9::text WHEN 'include' THEN true
                    WHEN 'only' THEN archived_at IS NOT NULL
                    ELSE archived_at IS NULL END
  AND (NOT EXISTS (SELECT 1 FROM bellhop.preferences AS p
                   WHERE p.tenant_id = $1 AND p.notifiable_type = $2 AND p.notifiable_id = $3
                     AND p.channel = 'database' AND NOT p.enabled)
       OR n.critical
       OR coalesce(
            (SELECT p.enabled FROM bellhop.preferences AS p
             WHERE p.tenant_id = $1 AND p.notifiable_type = $2 AND p.notifiable_id = $3
               AND p.channel = 'database' AND p.type = n.type),
            (SELECT p.enabled FROM bellhop.preferences AS p
             WHERE p.tenant_id = $1 AND p.notifiable_type = $2 AND p.notifiable_id = $3
               AND p.channel = 'database' AND p.type = '*'),
            true))
ORDER BY created_at DESC, id DESC
LIMIT $8;

-- name: MarkRead
-- Marking a read row read again changes nothing, so it pushes nothing. An
-- expired row is gone, as a deleted one is.
UPDATE bellhop.notifications SET read_at = coalesce(read_at, now())
WHERE id = $1 AND tenant_id = $2 AND notifiable_type = $3 AND notifiable_id = $4
  AND deleted_at IS NULL AND 'database' = ANY (channels)
  AND (expires_at IS NULL OR expires_at > now())
RETURNING id::text, type, data, database_key, read_at, seen_at, archived_at, expires_at, created_at, updated_at, critical;

-- name: MarkUnread
UPDATE bellhop.notifications SET read_at = NULL
WHERE id = $1 AND tenant_id = $2 AND notifiable_type = $3 AND notifiable_id = $4
  AND deleted_at IS NULL AND 'database' = ANY (channels)
  AND (expires_at IS NULL OR expires_at > now())
RETURNING id::text, type, data, database_key, read_at, seen_at, archived_at, expires_at, created_at, updated_at, critical;

-- name: Quiet
-- Transaction-local: the row trigger leaves the rows of the next statement
-- as they are (not pending), so a mark-all-read pushes one event, not one
-- per row.
SELECT set_config('bellhop.quiet', $1, true);

-- name: MarkAllRead
-- Archived rows too: "all" is everything the recipient could still open.
UPDATE bellhop.notifications SET read_at = now()
WHERE tenant_id = $1 AND notifiable_type = $2 AND notifiable_id = $3
  AND read_at IS NULL AND deleted_at IS NULL AND 'database' = ANY (channels)
  AND (expires_at IS NULL OR expires_at > now());

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

-- name: Preferences
SELECT type, channel, enabled FROM bellhop.preferences
WHERE tenant_id = $1 AND notifiable_type = $2 AND notifiable_id = $3
ORDER BY type, channel;

-- name: LockPreferences
-- Serializes SetPreferences per recipient until the transaction ends: two
-- at once would each keep the rows the other wrote (neither's DELETE sees
-- the other's uncommitted upsert), leaving a mix of both. The statement
-- after the lock takes a snapshot that sees the one before it committed.
SELECT pg_advisory_xact_lock(1886545510, hashtext($1 || chr(31) || $2 || chr(31) || $3));

-- name: SetPreferences
-- Replaces the recipient's preferences with ($4, $5, $6) (type, channel,
-- enabled) and tells every relay, on channel $7 with the recipient as
-- payload $8 (delivered at commit), so that its open streams reload them.
-- The upsert and the delete touch different rows.
WITH new AS (
    SELECT * FROM unnest($4::text[], $5::text[], $6::boolean[]) AS x (type, channel, enabled)
), gone AS (
    DELETE FROM bellhop.preferences AS p
    WHERE p.tenant_id = $1 AND p.notifiable_type = $2 AND p.notifiable_id = $3
      AND NOT EXISTS (SELECT 1 FROM new WHERE new.type = p.type AND new.channel = p.channel)
), put AS (
    INSERT INTO bellhop.preferences AS p (tenant_id, notifiable_type, notifiable_id, type, channel, enabled)
    SELECT $1, $2, $3, type, channel, enabled FROM new
    ON CONFLICT (tenant_id, notifiable_type, notifiable_id, channel, type)
    DO UPDATE SET enabled = excluded.enabled, updated_at = now()
    WHERE p.enabled IS DISTINCT FROM excluded.enabled
)
SELECT pg_notify($7, $8);

-- name: Archive
-- Archiving an archived row again changes nothing, so it pushes nothing.
UPDATE bellhop.notifications SET archived_at = coalesce(archived_at, now())
WHERE id = $1 AND tenant_id = $2 AND notifiable_type = $3 AND notifiable_id = $4
  AND deleted_at IS NULL AND 'database' = ANY (channels)
  AND (expires_at IS NULL OR expires_at > now())
RETURNING id::text, type, data, database_key, read_at, seen_at, archived_at, expires_at, created_at, updated_at, critical;

-- name: Unarchive
UPDATE bellhop.notifications SET archived_at = NULL
WHERE id = $1 AND tenant_id = $2 AND notifiable_type = $3 AND notifiable_id = $4
  AND deleted_at IS NULL AND 'database' = ANY (channels)
  AND (expires_at IS NULL OR expires_at > now())
RETURNING id::text, type, data, database_key, read_at, seen_at, archived_at, expires_at, created_at, updated_at, critical;

-- name: MarkSeen
-- seen_at is not a column the row trigger watches: the rows stay as they
-- are for the relay, and InsertSeen announces the change once. With $4 (an
-- event id), only rows whose current version the relay logged at or
-- before it: logged (visible in the cursor's seen snapshot) and without a
-- later entry for that version. A row changed since (a progress update)
-- is news the reader may not have seen.
UPDATE bellhop.notifications AS n SET seen_at = now()
WHERE n.tenant_id = $1 AND n.notifiable_type = $2 AND n.notifiable_id = $3
  AND n.seen_at IS NULL AND n.deleted_at IS NULL AND 'database' = ANY (n.channels)
  AND ($4::bigint IS NULL OR (
        pg_visible_in_snapshot(n.xid, (SELECT seen FROM bellhop.relay_state))
        AND NOT EXISTS (
            SELECT 1 FROM bellhop.relay_log AS l
            WHERE l.tenant_id = $1 AND l.notifiable_type = $2 AND l.notifiable_id = $3
              AND l.seq > $4 AND l.id = n.id AND l.xid = n.xid)));

-- name: InsertSeen
-- The one event of a mark-seen, as InsertReadAll; its sse says up to which
-- event id ($4), when one was given.
INSERT INTO bellhop.notifications
    (tenant_id, notifiable_type, notifiable_id, type, channels, op, sse)
VALUES ($1, $2, $3, 'bellhop.seen', '{sse}', 'seen',
        CASE WHEN $4::bigint IS NULL THEN NULL ELSE jsonb_build_object('until', $4::bigint) END);
