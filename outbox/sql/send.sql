-- The write side. Every statement is one round trip inside the caller's
-- transaction; the table's triggers do the rest (see migrations/).
--
-- Both drivers run the same statements, so the parameters are only text and
-- JSON: the recipients are a JSON array unnested here, not Go slices bound
-- to text[] (which pgx does and database/sql drivers such as lib/pq do
-- not), the channels are a comma-separated list, critical is 'true' or
-- 'false' and escalate_after is microseconds ('' for none).

-- name: InsertMany
-- One notification for every recipient in $1 (one for Send), in one
-- statement. $6 is the sender's W3C traceparent, or NULL.
INSERT INTO bellhop.notifications
    (tenant_id, notifiable_type, notifiable_id, type, data, sse, channels, traceparent, critical, escalate_after, expires_at)
SELECT r.tenant_id, r.notifiable_type, r.notifiable_id,
       $2::text, $3::jsonb, $4::jsonb, string_to_array($5::text, ','), $6::text,
       $7::text::boolean, nullif($8::text, '')::bigint * interval '1 microsecond', $9::timestamptz
FROM json_to_recordset($1::json) AS r (tenant_id text, notifiable_type text, notifiable_id text)
RETURNING tenant_id, notifiable_type, notifiable_id, id::text;

-- name: UpsertMany
-- A progress notification: one row per recipient and key. The data and
-- expiry are replaced, the row counts as unread and unseen again and is
-- restored if it was deleted or archived; created_at stays, so it keeps
-- its place in the inbox.
INSERT INTO bellhop.notifications
    (tenant_id, notifiable_type, notifiable_id, type, data, sse, channels, traceparent, critical, escalate_after,
     expires_at, database_key)
SELECT r.tenant_id, r.notifiable_type, r.notifiable_id,
       $2::text, $3::jsonb, $4::jsonb, string_to_array($5::text, ','), $6::text,
       $7::text::boolean, nullif($8::text, '')::bigint * interval '1 microsecond', $9::timestamptz, $10::text
FROM json_to_recordset($1::json) AS r (tenant_id text, notifiable_type text, notifiable_id text)
ON CONFLICT (tenant_id, notifiable_type, notifiable_id, database_key)
    WHERE database_key IS NOT NULL
DO UPDATE SET
    type = EXCLUDED.type,
    data = EXCLUDED.data,
    sse = EXCLUDED.sse,
    channels = EXCLUDED.channels,
    traceparent = EXCLUDED.traceparent,
    critical = EXCLUDED.critical,
    escalate_after = EXCLUDED.escalate_after,
    expires_at = EXCLUDED.expires_at,
    read_at = NULL,
    seen_at = NULL,
    archived_at = NULL,
    deleted_at = NULL,
    updated_at = now()
RETURNING tenant_id, notifiable_type, notifiable_id, id::text;
