-- What the writer role holds: exactly what every documented write needs
-- (a plain INSERT, the progress upsert, a soft delete or other UPDATE by
-- SQL, bellhop.send and send_many, the Go outbox's Send and SendMany), and
-- nothing of the relay's own tables (relay_log, relay_state) or River's.
-- Applications get it with
--   GRANT bellhop_writer TO your_app_role;
-- relay migrate (migrations.Up) creates the role, NOLOGIN, if it is missing
-- and runs this file with the schema's and the role's names in place of
-- "bellhop" and "bellhop_writer"; with your own migration tool, run
--   CREATE ROLE bellhop_writer NOLOGIN;
-- and then this file, after the migrations.

GRANT USAGE ON SCHEMA bellhop TO bellhop_writer;

-- SELECT: RETURNING (the outbox reads back the ids), ON CONFLICT and an
-- UPDATE's WHERE clause read the table.
GRANT SELECT ON bellhop.notifications TO bellhop_writer;

-- Every column but xid and op, which the defaults and the update trigger
-- set (a trigger's assignments need no column privilege): a writer that set
-- xid could hide its row from the relay.
GRANT INSERT (id, tenant_id, notifiable_type, notifiable_id, type, data, sse,
              channels, database_key, read_at, deleted_at, created_at, updated_at,
              traceparent, critical, escalate_after, seen_at, archived_at, expires_at)
    ON bellhop.notifications TO bellhop_writer;

-- What an upsert or an update by SQL changes (the upsert makes the row
-- unseen and unarchived again); a row's recipient and key stay as written.
GRANT UPDATE (type, data, sse, channels, read_at, deleted_at, updated_at, traceparent,
              critical, escalate_after, seen_at, archived_at, expires_at)
    ON bellhop.notifications TO bellhop_writer;

-- The wake trigger's WHEN clause reads the flag.
GRANT SELECT ON SEQUENCE bellhop.relay_wake TO bellhop_writer;

-- The send functions (00006; a traceparent argument since 00007, critical
-- and escalate_after since 00008, expires_at since 00009). They run with
-- the caller's privileges (SECURITY INVOKER), so EXECUTE adds nothing to
-- the grants above: it only lets the role call them. The migration revoked
-- it from PUBLIC.
GRANT EXECUTE ON FUNCTION
    bellhop.send(text, text, jsonb, text, text, jsonb, text, text[], text, boolean, interval, timestamptz),
    bellhop.send_many(text[], text, jsonb, text, text, jsonb, text, text[], text, boolean, interval, timestamptz)
    TO bellhop_writer;
