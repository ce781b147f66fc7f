-- The write side. Every statement is one round trip inside the caller's
-- transaction; the table's triggers do the rest (see migrations/).

-- name: InsertMany
-- One notification for every recipient in the arrays $1-$3 (one row for
-- Send), in one statement.
INSERT INTO bellhop.notifications
    (tenant_id, notifiable_type, notifiable_id, type, data, sse, channels)
SELECT r.tenant_id, r.notifiable_type, r.notifiable_id, $4, $5, $6, $7
FROM unnest($1::text[], $2::text[], $3::text[]) AS r (tenant_id, notifiable_type, notifiable_id)
RETURNING tenant_id, notifiable_type, notifiable_id, id::text;

-- name: UpsertMany
-- A progress notification: one row per recipient and key. The data is
-- replaced, the row counts as unread again and is restored if it was
-- deleted; created_at stays, so it keeps its place in the inbox.
INSERT INTO bellhop.notifications
    (tenant_id, notifiable_type, notifiable_id, type, data, sse, channels, database_key)
SELECT r.tenant_id, r.notifiable_type, r.notifiable_id, $4, $5, $6, $7, $8
FROM unnest($1::text[], $2::text[], $3::text[]) AS r (tenant_id, notifiable_type, notifiable_id)
ON CONFLICT (tenant_id, notifiable_type, notifiable_id, database_key)
    WHERE database_key IS NOT NULL
DO UPDATE SET
    type = EXCLUDED.type,
    data = EXCLUDED.data,
    sse = EXCLUDED.sse,
    channels = EXCLUDED.channels,
    read_at = NULL,
    deleted_at = NULL,
    updated_at = now()
RETURNING tenant_id, notifiable_type, notifiable_id, id::text;
