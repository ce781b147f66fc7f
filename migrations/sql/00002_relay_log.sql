-- The relay stops rewriting notification rows. 00001 stamped each committed
-- row with relay_seq, an UPDATE of an indexed column: a second heap tuple and
-- new entries in every index for every row, written by one serialized
-- backend (about 100 µs a row, the ceiling of batch throughput). Now each row
-- carries the id of the transaction that last wrote it (xid), the relay finds
-- newly committed rows with a snapshot cursor, and appends one narrow entry
-- per row to relay_log, whose seq is the event id. Event ids already handed
-- out stay valid: stamped rows move to the log with their relay_seq.

-- +goose Up
-- +goose StatementBegin

-- One entry per pushed change, in commit order: seq is the SSE event id.
-- Append-only; the prune job removes entries older than the replay window.
-- An entry whose xid is no longer the row's is stale (the row changed again
-- and has a later entry); readers skip it.
CREATE TABLE relay_log (
    seq             bigint      PRIMARY KEY,
    id              uuid        NOT NULL,
    xid             xid8        NOT NULL,
    tenant_id       text        NOT NULL,
    notifiable_type text        NOT NULL,
    notifiable_id   text        NOT NULL,
    logged_at       timestamptz NOT NULL DEFAULT now()
);

-- One recipient's replay from Last-Event-ID.
CREATE INDEX relay_log_recipient_idx
    ON relay_log (tenant_id, notifiable_type, notifiable_id, seq);

INSERT INTO relay_log (seq, id, xid, tenant_id, notifiable_type, notifiable_id, logged_at)
SELECT relay_seq, id, '0', tenant_id, notifiable_type, notifiable_id, updated_at
FROM notifications
WHERE relay_seq IS NOT NULL;

-- The transaction that last wrote the row (its top-level id). Rows stamped
-- before this migration get 0, which every snapshot sees as long committed;
-- rows still pending get this migration's, which the cursor below has not
-- seen, so the relay logs them.
ALTER TABLE notifications ADD COLUMN xid xid8;
UPDATE notifications
SET xid = CASE WHEN relay_seq IS NULL THEN pg_current_xact_id() ELSE '0' END;
ALTER TABLE notifications
    ALTER COLUMN xid SET DEFAULT pg_current_xact_id(),
    ALTER COLUMN xid SET NOT NULL;
-- Drops the pending, relay_seq and recipient_seq indexes with it.
ALTER TABLE notifications DROP COLUMN relay_seq;

-- The relay's scan for rows it has not logged yet, and pruning's.
CREATE INDEX notifications_xid_idx ON notifications (xid, id);

-- The cursor. seen: every row version whose xid is visible in this snapshot
-- has its log entry. A round logs what is visible in a newer snapshot, next,
-- but not in seen, in (xid, id) order, a batch per transaction; (next_xid,
-- next_id) is the last row it logged. When the round ends, seen = next.
ALTER TABLE relay_state
    ADD COLUMN seen    pg_snapshot,
    ADD COLUMN next    pg_snapshot,
    ADD COLUMN next_xid xid8 NOT NULL DEFAULT '0',
    ADD COLUMN next_id  uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000';
-- Seen: what this migration's snapshot saw, except this migration itself.
UPDATE relay_state SET seen = (
    SELECT format('%s:%s:%s', least(pg_snapshot_xmin(s), me), me,
                  coalesce((SELECT string_agg(x::text, ',' ORDER BY x)
                            FROM pg_snapshot_xip(s) AS x WHERE x < me), ''))::pg_snapshot
    FROM pg_current_snapshot() AS s, pg_current_xact_id() AS me);
ALTER TABLE relay_state ALTER COLUMN seen SET NOT NULL;

-- What the relay has not logged yet: empty when it keeps up. For monitoring
-- (SELECT count(*) FROM bellhop.relay_pending) and tests.
CREATE VIEW relay_pending AS
SELECT n.*
FROM notifications AS n, relay_state AS s
WHERE NOT pg_visible_in_snapshot(n.xid, s.seen)
  AND NOT (s.next IS NOT NULL AND pg_visible_in_snapshot(n.xid, s.next)
           AND (n.xid, n.id) <= (s.next_xid, s.next_id));

-- Every log entry as the event streams push, with its row's current
-- state: the relay's tail and replay read it. An entry whose xid is no
-- longer the row's (the row changed again, or is gone) is stale: current is
-- false and the row's fields are empty, so that paging by seq still moves
-- on.
CREATE VIEW relay_events AS
SELECT l.seq, n.id IS NOT NULL AS current, coalesce(n.id::text, '') AS id,
       l.tenant_id, l.notifiable_type, l.notifiable_id,
       coalesce(n.type, '') AS type, coalesce(n.op, '') AS op, n.sse, n.database_key, n.read_at,
       coalesce('sse' = ANY (n.channels), false) AS live, coalesce(n.updated_at, l.logged_at) AS changed
FROM relay_log AS l
LEFT JOIN notifications AS n ON n.id = l.id AND n.xid = l.xid;

-- A reader-visible update takes the writing transaction's xid: the relay
-- logs the row again. Otherwise as in 00001.
CREATE OR REPLACE FUNCTION notifications_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('bellhop.quiet', true) = 'on' THEN
        RETURN NEW;
    END IF;
    NEW.op := CASE
        WHEN NEW.deleted_at IS NOT NULL AND OLD.deleted_at IS NULL THEN 'deleted'
        WHEN NEW.data IS DISTINCT FROM OLD.data
          OR NEW.sse IS DISTINCT FROM OLD.sse
          OR NEW.type IS DISTINCT FROM OLD.type
          OR NEW.updated_at IS DISTINCT FROM OLD.updated_at
          OR NEW.deleted_at IS DISTINCT FROM OLD.deleted_at THEN 'updated'
        WHEN NEW.read_at IS NULL THEN 'unread'
        ELSE 'read'
    END;
    NEW.updated_at := now();
    NEW.xid := pg_current_xact_id();
    RETURN NEW;
END
$$;

-- The wake trigger reads the flag in its WHEN clause: while the flag is
-- down no PL/pgSQL runs at all (a statement-level call per insert was about
-- 7% of a single-row writer's throughput). The sequence is bound by OID
-- when the trigger is created, whatever the writer's search_path.
CREATE OR REPLACE FUNCTION notifications_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_pending', '');
    RETURN NULL;
END
$$;
DROP TRIGGER notifications_wake ON notifications;
CREATE TRIGGER notifications_wake
    AFTER INSERT OR UPDATE OF data, sse, type, read_at, deleted_at, updated_at ON notifications
    FOR EACH STATEMENT
    WHEN (pg_sequence_last_value('relay_wake'::regclass) = 1)
    EXECUTE FUNCTION notifications_wake();

-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP TRIGGER notifications_wake ON notifications;
CREATE OR REPLACE FUNCTION notifications_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_sequence_last_value(format('%I.relay_wake', TG_TABLE_SCHEMA)::regclass) = 1 THEN
        PERFORM pg_notify(TG_TABLE_SCHEMA || '_pending', '');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER notifications_wake
    AFTER INSERT OR UPDATE OF data, sse, type, read_at, deleted_at, updated_at ON notifications
    FOR EACH STATEMENT
    EXECUTE FUNCTION notifications_wake();
ALTER TABLE notifications ADD COLUMN relay_seq bigint;
UPDATE notifications AS n SET relay_seq = l.seq
FROM (SELECT DISTINCT ON (id) id, xid, seq FROM relay_log ORDER BY id, seq DESC) AS l
WHERE l.id = n.id AND l.xid = n.xid;
DROP VIEW relay_pending;
DROP VIEW relay_events;
DROP INDEX notifications_xid_idx;
ALTER TABLE notifications DROP COLUMN xid;
ALTER TABLE relay_state DROP COLUMN seen, DROP COLUMN next, DROP COLUMN next_xid, DROP COLUMN next_id;
DROP TABLE relay_log;
CREATE INDEX notifications_pending_idx ON notifications (updated_at, id) WHERE relay_seq IS NULL;
CREATE UNIQUE INDEX notifications_relay_seq_idx ON notifications (relay_seq);
CREATE INDEX notifications_recipient_seq_idx
    ON notifications (tenant_id, notifiable_type, notifiable_id, relay_seq)
    WHERE relay_seq IS NOT NULL;
CREATE OR REPLACE FUNCTION notifications_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('bellhop.quiet', true) = 'on' THEN
        RETURN NEW;
    END IF;
    NEW.op := CASE
        WHEN NEW.deleted_at IS NOT NULL AND OLD.deleted_at IS NULL THEN 'deleted'
        WHEN NEW.data IS DISTINCT FROM OLD.data
          OR NEW.sse IS DISTINCT FROM OLD.sse
          OR NEW.type IS DISTINCT FROM OLD.type
          OR NEW.updated_at IS DISTINCT FROM OLD.updated_at
          OR NEW.deleted_at IS DISTINCT FROM OLD.deleted_at THEN 'updated'
        WHEN NEW.read_at IS NULL THEN 'unread'
        ELSE 'read'
    END;
    NEW.updated_at := now();
    NEW.relay_seq := NULL;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
