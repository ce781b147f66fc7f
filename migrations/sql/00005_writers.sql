-- Writers other than the Go outbox. Plain SQL is a documented way to write,
-- so the outbox's payload limits become the table's: a 1.1 MB sse written
-- by hand went out as one megabyte data: line on every stream. And a writer
-- can opt out of the wake NOTIFY (bellhop.no_wake), which two-phase commit
-- needs: PostgreSQL refuses to PREPARE a transaction that issued NOTIFY.
--
-- JSON sizes are measured as PostgreSQL writes the jsonb out (::text, with
-- a space after every ':' and ','), which is what the relay reads and sends:
-- a short number such as 1e1000 is stored as a thousand digits. The Go
-- outbox measures the same way, so it refuses first with a clearer error.
--
-- Existing rows are checked, not grandfathered (no NOT VALID): a NOT VALID
-- check still applies to every later UPDATE of an old row, so an oversized
-- row could no longer be marked read or deleted through the API. Adding the
-- constraints reads every row once under the table's exclusive lock, as
-- 00002's rewrite did: on a large table, run it in a quiet moment. An
-- existing sse that breaks the new rules was never pushable sensibly and is
-- cleared (the event then carries id and type only, as for a NULL sse;
-- the inbox keeps data); any other violation stops the migration with a
-- message that says how to find the rows.
--
-- CHECK constraints run on every UPDATE of a row, whichever columns change:
-- a mark-read converts the row's data to text once more (for 20,000 rows of
-- 350-byte data, lost in the noise of the update itself).

-- +goose Up
-- +goose StatementBegin

DO $$
DECLARE
    bad bigint;
BEGIN
    SELECT count(*) INTO bad FROM notifications
    WHERE octet_length(data::text) > 65536
       OR octet_length(type) > 255
       OR octet_length(tenant_id) > 255
       OR octet_length(notifiable_type) > 255
       OR octet_length(notifiable_id) > 255
       OR octet_length(database_key) > 255;
    IF bad > 0 THEN
        RAISE EXCEPTION 'bellhop: % notifications are over the new limits (data 64 KiB as jsonb text; type, database_key, tenant_id, notifiable_type, notifiable_id 255 bytes)', bad
            USING HINT = 'Find them with SELECT id FROM notifications WHERE octet_length(data::text) > 65536 OR greatest(octet_length(type), octet_length(tenant_id), octet_length(notifiable_type), octet_length(notifiable_id), octet_length(database_key)) > 255; shrink or delete them, then migrate again.';
    END IF;
END
$$;

-- Quietly: the change is not news to any reader, and must not be pushed.
SELECT set_config('bellhop.quiet', 'on', true);
UPDATE notifications SET sse = NULL
WHERE sse IS NOT NULL AND (jsonb_typeof(sse) <> 'object' OR octet_length(sse::text) > 4096);
SELECT set_config('bellhop.quiet', '', true);

-- The constraint's name is the error a writer sees, so it states the limit.
ALTER TABLE notifications
    ADD CONSTRAINT notifications_data_max_64kib CHECK (octet_length(data::text) <= 65536),
    ADD CONSTRAINT notifications_sse_is_object CHECK (sse IS NULL OR jsonb_typeof(sse) = 'object'),
    ADD CONSTRAINT notifications_sse_max_4kib CHECK (sse IS NULL OR octet_length(sse::text) <= 4096),
    ADD CONSTRAINT notifications_type_max_255_bytes CHECK (octet_length(type) <= 255),
    ADD CONSTRAINT notifications_database_key_max_255_bytes CHECK (octet_length(database_key) <= 255),
    ADD CONSTRAINT notifications_tenant_id_max_255_bytes CHECK (octet_length(tenant_id) <= 255),
    ADD CONSTRAINT notifications_notifiable_type_max_255_bytes CHECK (octet_length(notifiable_type) <= 255),
    ADD CONSTRAINT notifications_notifiable_id_max_255_bytes CHECK (octet_length(notifiable_id) <= 255);

-- The wake trigger, as in 00002, unless the writer set bellhop.no_wake to
-- 'on' (SET LOCAL for a transaction, SET for a session, ALTER ROLE ... SET
-- for a role): its rows are then found by the relay's polling or its sweep,
-- within BELLHOP_SWEEP_INTERVAL. Still no PL/pgSQL call while the flag is
-- down; current_setting is a plain function call.
DROP TRIGGER notifications_wake ON notifications;
CREATE TRIGGER notifications_wake
    AFTER INSERT OR UPDATE OF data, sse, type, read_at, deleted_at, updated_at ON notifications
    FOR EACH STATEMENT
    WHEN (pg_sequence_last_value('relay_wake'::regclass) = 1
          AND coalesce(current_setting('bellhop.no_wake', true), '') <> 'on')
    EXECUTE FUNCTION notifications_wake();

-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP TRIGGER notifications_wake ON notifications;
CREATE TRIGGER notifications_wake
    AFTER INSERT OR UPDATE OF data, sse, type, read_at, deleted_at, updated_at ON notifications
    FOR EACH STATEMENT
    WHEN (pg_sequence_last_value('relay_wake'::regclass) = 1)
    EXECUTE FUNCTION notifications_wake();
ALTER TABLE notifications
    DROP CONSTRAINT notifications_data_max_64kib,
    DROP CONSTRAINT notifications_sse_is_object,
    DROP CONSTRAINT notifications_sse_max_4kib,
    DROP CONSTRAINT notifications_type_max_255_bytes,
    DROP CONSTRAINT notifications_database_key_max_255_bytes,
    DROP CONSTRAINT notifications_tenant_id_max_255_bytes,
    DROP CONSTRAINT notifications_notifiable_type_max_255_bytes,
    DROP CONSTRAINT notifications_notifiable_id_max_255_bytes;
-- +goose StatementEnd
