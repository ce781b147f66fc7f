-- The inbox's states beyond read: seen (the bell clears when the panel
-- opens, each item stays unread until acted on), archived (out of the inbox
-- until unarchived, kept like a read row), and an expiry per notification.
--
--   seen_at      set by the reader's "mark seen" (POST /notifications/seen),
--                announced by one marker event (op "seen"), as read-all is.
--   archived_at  set and cleared by the reader; events "archived" and
--                "unarchived". Lists leave archived rows out unless asked;
--                counts always do. Pruned after the retention from when
--                they were archived, as read rows are after they were read.
--   expires_at   set by the writer (bellhop.send's new argument, the Go
--                outbox's Expiring). An expired row is neither listed nor
--                counted from that instant; the relay's sweep (every
--                BELLHOP_SWEEP_INTERVAL, 1 s by default) then touches it,
--                and it is pushed as "expired"; the prune job removes it
--                once the replay window has passed.
--
-- Rebuilds the unread-count index and adds two (unseen count, due
-- expiries): on a large table, run it in a quiet moment. bellhop.send and
-- send_many gain an argument, so they are dropped and created again, and
-- whoever could execute the old ones can execute the new ones. Calls by
-- name or position keep working.

-- +goose Up
-- +goose StatementBegin

ALTER TABLE notifications
    ADD COLUMN seen_at     timestamptz,
    ADD COLUMN archived_at timestamptz,
    ADD COLUMN expires_at  timestamptz,
    ADD CONSTRAINT notifications_inbox_times_valid CHECK (
        (seen_at IS NULL OR seen_at BETWEEN '0001-01-01' AND '9999-12-31')
        AND (archived_at IS NULL OR archived_at BETWEEN '0001-01-01' AND '9999-12-31')
        AND (expires_at IS NULL OR expires_at BETWEEN '0001-01-01' AND '9999-12-31'));

ALTER TABLE notifications DROP CONSTRAINT notifications_op_valid;
ALTER TABLE notifications ADD CONSTRAINT notifications_op_valid CHECK (
    op IN ('created', 'updated', 'read', 'unread', 'deleted', 'read_all',
           'seen', 'archived', 'unarchived', 'expired'));

-- Counts leave archived and expired rows out. Expiry is a moment, not a
-- state an index predicate can hold, so expires_at rides in the index and
-- the count stays index-only.
DROP INDEX notifications_unread_idx;
CREATE INDEX notifications_unread_idx
    ON notifications (tenant_id, notifiable_type, notifiable_id) INCLUDE (expires_at)
    WHERE read_at IS NULL AND deleted_at IS NULL AND archived_at IS NULL AND 'database' = ANY (channels);
CREATE INDEX notifications_unseen_idx
    ON notifications (tenant_id, notifiable_type, notifiable_id) INCLUDE (expires_at)
    WHERE seen_at IS NULL AND deleted_at IS NULL AND archived_at IS NULL AND 'database' = ANY (channels);

-- The sweep's due expiries: rows not yet pushed as expired.
CREATE INDEX notifications_expiry_idx
    ON notifications (expires_at)
    WHERE expires_at IS NOT NULL AND op <> 'expired' AND deleted_at IS NULL;

-- As in 00002, with archive and expiry. seen_at is not a column the
-- trigger watches: a mark-seen announces itself once, with a marker row.
-- A row whose expiry has come is "expired" whatever else changed: to a
-- reader it is gone (the sweep touches it to push that).
CREATE OR REPLACE FUNCTION notifications_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('bellhop.quiet', true) = 'on' THEN
        RETURN NEW;
    END IF;
    NEW.op := CASE
        WHEN NEW.deleted_at IS NOT NULL AND OLD.deleted_at IS NULL THEN 'deleted'
        WHEN NEW.expires_at <= now() AND NEW.deleted_at IS NULL THEN 'expired'
        WHEN NEW.data IS DISTINCT FROM OLD.data
          OR NEW.sse IS DISTINCT FROM OLD.sse
          OR NEW.type IS DISTINCT FROM OLD.type
          OR NEW.updated_at IS DISTINCT FROM OLD.updated_at
          OR NEW.expires_at IS DISTINCT FROM OLD.expires_at
          OR NEW.deleted_at IS DISTINCT FROM OLD.deleted_at THEN 'updated'
        WHEN NEW.archived_at IS NOT NULL AND OLD.archived_at IS NULL THEN 'archived'
        WHEN NEW.archived_at IS NULL AND OLD.archived_at IS NOT NULL THEN 'unarchived'
        WHEN NEW.read_at IS NULL THEN 'unread'
        ELSE 'read'
    END;
    -- The trace context belongs to the write that set it (00007): what a
    -- reader or the expiry does is not part of the sender's trace.
    IF NEW.op IN ('read', 'unread', 'deleted', 'archived', 'unarchived', 'expired')
       AND NEW.traceparent IS NOT DISTINCT FROM OLD.traceparent THEN
        NEW.traceparent := NULL;
    END IF;
    NEW.updated_at := now();
    NEW.xid := pg_current_xact_id();
    RETURN NEW;
END
$$;

DROP TRIGGER notifications_changed ON notifications;
CREATE TRIGGER notifications_changed
    BEFORE UPDATE OF data, sse, type, read_at, deleted_at, updated_at, archived_at, expires_at ON notifications
    FOR EACH ROW
    WHEN (OLD.data IS DISTINCT FROM NEW.data
       OR OLD.sse IS DISTINCT FROM NEW.sse
       OR OLD.type IS DISTINCT FROM NEW.type
       OR OLD.read_at IS DISTINCT FROM NEW.read_at
       OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at
       OR OLD.updated_at IS DISTINCT FROM NEW.updated_at
       OR OLD.archived_at IS DISTINCT FROM NEW.archived_at
       OR OLD.expires_at IS DISTINCT FROM NEW.expires_at)
    EXECUTE FUNCTION notifications_changed();

DROP TRIGGER notifications_wake ON notifications;
CREATE TRIGGER notifications_wake
    AFTER INSERT OR UPDATE OF data, sse, type, read_at, deleted_at, updated_at, archived_at, expires_at ON notifications
    FOR EACH STATEMENT
    WHEN (pg_sequence_last_value('relay_wake'::regclass) = 1
          AND coalesce(current_setting('bellhop.no_wake', true), '') <> 'on')
    EXECUTE FUNCTION notifications_wake();

-- The send functions take expires_at, last, so that positional calls
-- written for 00008 mean what they meant; a progress upsert also makes the
-- row unseen and unarchived: it is news again, as it is unread again. Keep who may execute the functions across
-- the new signature: the
-- grantees wait in a transaction-local setting.
SELECT set_config('bellhop.send_grantees', coalesce(string_agg(DISTINCT a.grantee::regrole::text, ','), ''), true)
FROM pg_proc AS p, aclexplode(p.proacl) AS a
WHERE p.oid IN ('send(text, text, jsonb, text, text, jsonb, text, text[], text, boolean, interval)'::regprocedure,
                'send_many(text[], text, jsonb, text, text, jsonb, text, text[], text, boolean, interval)'::regprocedure)
  AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner;

DROP FUNCTION send(text, text, jsonb, text, text, jsonb, text, text[], text, boolean, interval);
DROP FUNCTION send_many(text[], text, jsonb, text, text, jsonb, text, text[], text, boolean, interval);

-- One notification for every id in notifiable_ids, in one statement.
-- Returns the rows' ids in the order of notifiable_ids; a repeated id gets
-- one row, and its id at each place. An empty array writes nothing and
-- returns an empty array. As in the outbox: a NULL data or JSON null is {},
-- a JSON null sse is NULL, an empty database_key is no key, and channels
-- are normalized (duplicates dropped).
CREATE FUNCTION send_many(
    notifiable_ids  text[],
    type            text,
    data            jsonb  DEFAULT '{}',
    tenant_id       text   DEFAULT '',
    notifiable_type text   DEFAULT 'User',
    sse             jsonb  DEFAULT NULL,
    database_key    text   DEFAULT NULL,
    channels        text[] DEFAULT '{database,sse}',
    traceparent     text   DEFAULT NULL,
    critical        boolean  DEFAULT false,
    escalate_after  interval DEFAULT NULL,
    expires_at      timestamptz DEFAULT NULL
) RETURNS uuid[] LANGUAGE plpgsql AS $$
-- The arguments share the columns' names: in SQL below a bare name is the
-- column, and an argument is always qualified with the function's name.
#variable_conflict use_column
DECLARE
    d   jsonb := coalesce(nullif(send_many.data, 'null'::jsonb), '{}');
    s   jsonb := nullif(send_many.sse, 'null'::jsonb);
    k   text  := nullif(send_many.database_key, '');
    tp  text  := nullif(send_many.traceparent, '');
    via text[];
    ids uuid[];
    f   record;
    c   text;
BEGIN
    IF send_many.type IS NULL OR send_many.type = '' THEN
        RAISE EXCEPTION 'bellhop: invalid notification: type is empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF send_many.notifiable_type IS NULL OR send_many.notifiable_type = '' THEN
        RAISE EXCEPTION 'bellhop: invalid notification: notifiable_type is empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF send_many.tenant_id IS NULL THEN
        RAISE EXCEPTION 'bellhop: invalid notification: tenant_id is null'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass '''' (the default) for no tenant.';
    END IF;
    FOR f IN VALUES ('type', send_many.type), ('tenant_id', send_many.tenant_id),
                    ('notifiable_type', send_many.notifiable_type), ('database_key', k) LOOP
        IF octet_length(f.column2) > 255 THEN
            RAISE EXCEPTION 'bellhop: invalid notification: % is % bytes, over the limit of 255', f.column1, octet_length(f.column2)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;

    IF jsonb_typeof(d) <> 'object' THEN
        RAISE EXCEPTION 'bellhop: invalid notification: data must be a JSON object, not a JSON %', jsonb_typeof(d)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Measured as stored, as the table's constraints and the outbox do.
    IF octet_length(d::text) > 65536 THEN
        RAISE EXCEPTION 'bellhop: invalid notification: data is % bytes of JSON as PostgreSQL stores it, over the limit of 65536', octet_length(d::text)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF s IS NOT NULL AND jsonb_typeof(s) <> 'object' THEN
        RAISE EXCEPTION 'bellhop: invalid notification: sse must be a JSON object or NULL, not a JSON %', jsonb_typeof(s)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(s::text) > 4096 THEN
        RAISE EXCEPTION 'bellhop: invalid notification: sse is % bytes of JSON as PostgreSQL stores it, over the limit of 4096', octet_length(s::text)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- The table's check (notifications_traceparent_w3c), with the
    -- function's words.
    IF tp IS NOT NULL AND (tp !~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'
                           OR substr(tp, 4, 32) = repeat('0', 32) OR substr(tp, 37, 16) = repeat('0', 16)) THEN
        RAISE EXCEPTION 'bellhop: invalid notification: traceparent % is not a W3C traceparent', to_json(left(tp, 64))::text
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass 00-<32 lower-case hex digits: trace id>-<16: parent span id>-<2: flags>, ids not all zero, or NULL.';
    END IF;

    IF send_many.channels IS NULL OR cardinality(send_many.channels) = 0 THEN
        RAISE EXCEPTION 'bellhop: invalid notification: channels is empty'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass ''{database}'', ''{sse}'', ''{database,sse}'' (the default), optionally with ''webhook''.';
    END IF;
    FOREACH c IN ARRAY send_many.channels LOOP
        IF c IS NULL OR c NOT IN ('database', 'sse', 'webhook') THEN
            RAISE EXCEPTION 'bellhop: invalid notification: channels has unknown channel % (want "database", "sse" or "webhook")', coalesce(to_json(c)::text, 'NULL')
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    via := ARRAY(SELECT v FROM unnest('{database,sse,webhook}'::text[]) AS v WHERE v = ANY (send_many.channels));
    IF send_many.critical IS NULL THEN
        RAISE EXCEPTION 'bellhop: invalid notification: critical is null' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF send_many.escalate_after IS NOT NULL AND send_many.escalate_after <= '0'::interval THEN
        RAISE EXCEPTION 'bellhop: invalid notification: escalate_after must be positive, not %', send_many.escalate_after
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Times a client can parse, as the table's check says (no infinity).
    IF NOT (send_many.expires_at BETWEEN '0001-01-01' AND '9999-12-31') THEN
        RAISE EXCEPTION 'bellhop: invalid notification: expires_at % is out of range (years 1 to 9999)', send_many.expires_at
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    IF send_many.notifiable_ids IS NULL THEN
        RAISE EXCEPTION 'bellhop: invalid notification: notifiable_ids is null' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cardinality(send_many.notifiable_ids) = 0 THEN
        RETURN '{}';
    END IF;
    IF array_ndims(send_many.notifiable_ids) > 1 THEN
        RAISE EXCEPTION 'bellhop: invalid notification: notifiable_ids must be a one-dimensional array' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR i IN array_lower(send_many.notifiable_ids, 1) .. array_upper(send_many.notifiable_ids, 1) LOOP
        IF send_many.notifiable_ids[i] IS NULL OR send_many.notifiable_ids[i] = '' THEN
            RAISE EXCEPTION 'bellhop: invalid notification: notifiable_ids[%] is empty', i USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF octet_length(send_many.notifiable_ids[i]) > 255 THEN
            RAISE EXCEPTION 'bellhop: invalid notification: notifiable_ids[%] is % bytes, over the limit of 255', i, octet_length(send_many.notifiable_ids[i])
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;

    -- The outbox's statements (outbox/sql/send.sql): a plain insert, or the
    -- progress upsert, which replaces the payload, type, channels and
    -- expiry, makes the row unread and unseen, restores it if deleted or
    -- archived, and keeps created_at.
    IF k IS NULL THEN
        WITH r AS (
            INSERT INTO notifications AS n
                (tenant_id, notifiable_type, notifiable_id, type, data, sse, channels, traceparent,
                 critical, escalate_after, expires_at)
            SELECT send_many.tenant_id, send_many.notifiable_type, u.nid, send_many.type, d, s, via, tp,
                   send_many.critical, send_many.escalate_after, send_many.expires_at
            FROM (SELECT DISTINCT nid FROM unnest(send_many.notifiable_ids) AS nid) AS u
            RETURNING n.notifiable_id AS nid, n.id
        )
        SELECT array_agg(r.id ORDER BY o.ord) INTO ids
        FROM unnest(send_many.notifiable_ids) WITH ORDINALITY AS o (nid, ord)
        JOIN r ON r.nid = o.nid;
    ELSE
        WITH r AS (
            INSERT INTO notifications AS n
                (tenant_id, notifiable_type, notifiable_id, type, data, sse, channels, database_key, traceparent,
                 critical, escalate_after, expires_at)
            SELECT send_many.tenant_id, send_many.notifiable_type, u.nid, send_many.type, d, s, via, k, tp,
                   send_many.critical, send_many.escalate_after, send_many.expires_at
            FROM (SELECT DISTINCT nid FROM unnest(send_many.notifiable_ids) AS nid) AS u
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
            RETURNING n.notifiable_id AS nid, n.id
        )
        SELECT array_agg(r.id ORDER BY o.ord) INTO ids
        FROM unnest(send_many.notifiable_ids) WITH ORDINALITY AS o (nid, ord)
        JOIN r ON r.nid = o.nid;
    END IF;
    RETURN ids;
END
$$;

-- One notification for one recipient; returns its row's id. As send_many,
-- with the recipient's id named notifiable_id.
CREATE FUNCTION send(
    notifiable_id   text,
    type            text,
    data            jsonb  DEFAULT '{}',
    tenant_id       text   DEFAULT '',
    notifiable_type text   DEFAULT 'User',
    sse             jsonb  DEFAULT NULL,
    database_key    text   DEFAULT NULL,
    channels        text[] DEFAULT '{database,sse}',
    traceparent     text   DEFAULT NULL,
    critical        boolean  DEFAULT false,
    escalate_after  interval DEFAULT NULL,
    expires_at      timestamptz DEFAULT NULL
) RETURNS uuid LANGUAGE plpgsql AS $$
BEGIN
    IF send.notifiable_id IS NULL OR send.notifiable_id = '' THEN
        RAISE EXCEPTION 'bellhop: invalid notification: notifiable_id is empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(send.notifiable_id) > 255 THEN
        RAISE EXCEPTION 'bellhop: invalid notification: notifiable_id is % bytes, over the limit of 255', octet_length(send.notifiable_id)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN (send_many(ARRAY[send.notifiable_id], send.type, send.data, send.tenant_id,
                      send.notifiable_type, send.sse, send.database_key, send.channels,
                      send.traceparent, send.critical, send.escalate_after,
                      send.expires_at))[1];
END
$$;

DO $$
BEGIN
    IF current_schema() IS NULL THEN
        RAISE EXCEPTION 'bellhop: no schema to create the send functions in'
            USING HINT = 'SET search_path TO bellhop (your schema) before applying the migrations.';
    END IF;
    EXECUTE format('ALTER FUNCTION send_many(text[], text, jsonb, text, text, jsonb, text, text[], text, boolean, interval, timestamptz) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION send(text, text, jsonb, text, text, jsonb, text, text[], text, boolean, interval, timestamptz) SET search_path = %I, pg_temp', current_schema());
END
$$;

-- Only the writer role (writer.sql) and the owner may call them.
REVOKE EXECUTE ON FUNCTION send_many(text[], text, jsonb, text, text, jsonb, text, text[], text, boolean, interval, timestamptz) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION send(text, text, jsonb, text, text, jsonb, text, text[], text, boolean, interval, timestamptz) FROM PUBLIC;


DO $$
DECLARE
    g text;
BEGIN
    FOR g IN SELECT unnest(string_to_array(nullif(current_setting('bellhop.send_grantees'), ''), ',')) LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION send(text, text, jsonb, text, text, jsonb, text, text[], text, boolean, interval, timestamptz), '
                       'send_many(text[], text, jsonb, text, text, jsonb, text, text[], text, boolean, interval, timestamptz) TO %s', g);
    END LOOP;
END
$$;

-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin

-- The ops the old code does not know become what it would have said.
SELECT set_config('bellhop.quiet', 'on', true);
UPDATE notifications SET op = CASE op WHEN 'seen' THEN 'read_all' ELSE 'updated' END
WHERE op IN ('seen', 'archived', 'unarchived', 'expired');
SELECT set_config('bellhop.quiet', '', true);

DROP TRIGGER notifications_wake ON notifications;
CREATE TRIGGER notifications_wake
    AFTER INSERT OR UPDATE OF data, sse, type, read_at, deleted_at, updated_at ON notifications
    FOR EACH STATEMENT
    WHEN (pg_sequence_last_value('relay_wake'::regclass) = 1
          AND coalesce(current_setting('bellhop.no_wake', true), '') <> 'on')
    EXECUTE FUNCTION notifications_wake();
DROP TRIGGER notifications_changed ON notifications;
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
    IF NEW.op IN ('read', 'unread', 'deleted') AND NEW.traceparent IS NOT DISTINCT FROM OLD.traceparent THEN
        NEW.traceparent := NULL;
    END IF;
    NEW.updated_at := now();
    NEW.xid := pg_current_xact_id();
    RETURN NEW;
END
$$;
CREATE TRIGGER notifications_changed
    BEFORE UPDATE OF data, sse, type, read_at, deleted_at, updated_at ON notifications
    FOR EACH ROW
    WHEN (OLD.data IS DISTINCT FROM NEW.data
       OR OLD.sse IS DISTINCT FROM NEW.sse
       OR OLD.type IS DISTINCT FROM NEW.type
       OR OLD.read_at IS DISTINCT FROM NEW.read_at
       OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at
       OR OLD.updated_at IS DISTINCT FROM NEW.updated_at)
    EXECUTE FUNCTION notifications_changed();

DROP INDEX notifications_expiry_idx;
DROP INDEX notifications_unseen_idx;
DROP INDEX notifications_unread_idx;
ALTER TABLE notifications
    DROP CONSTRAINT notifications_op_valid,
    DROP CONSTRAINT notifications_inbox_times_valid,
    DROP COLUMN seen_at,
    DROP COLUMN archived_at,
    DROP COLUMN expires_at;
ALTER TABLE notifications ADD CONSTRAINT notifications_op_valid CHECK (
    op IN ('created', 'updated', 'read', 'unread', 'deleted', 'read_all'));
CREATE INDEX notifications_unread_idx
    ON notifications (tenant_id, notifiable_type, notifiable_id)
    WHERE read_at IS NULL AND deleted_at IS NULL AND 'database' = ANY (channels);

-- The send functions of 00008, as they were. Keep who may execute the functions across
-- the new signature: the
-- grantees wait in a transaction-local setting.
SELECT set_config('bellhop.send_grantees', coalesce(string_agg(DISTINCT a.grantee::regrole::text, ','), ''), true)
FROM pg_proc AS p, aclexplode(p.proacl) AS a
WHERE p.oid IN ('send(text, text, jsonb, text, text, jsonb, text, text[], text, boolean, interval, timestamptz)'::regprocedure,
                'send_many(text[], text, jsonb, text, text, jsonb, text, text[], text, boolean, interval, timestamptz)'::regprocedure)
  AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner;

DROP FUNCTION send(text, text, jsonb, text, text, jsonb, text, text[], text, boolean, interval, timestamptz);
DROP FUNCTION send_many(text[], text, jsonb, text, text, jsonb, text, text[], text, boolean, interval, timestamptz);

-- One notification for every id in notifiable_ids, in one statement.
-- Returns the rows' ids in the order of notifiable_ids; a repeated id gets
-- one row, and its id at each place. An empty array writes nothing and
-- returns an empty array. As in the outbox: a NULL data or JSON null is {},
-- a JSON null sse is NULL, an empty database_key is no key, and channels
-- are normalized (duplicates dropped).
CREATE FUNCTION send_many(
    notifiable_ids  text[],
    type            text,
    data            jsonb  DEFAULT '{}',
    tenant_id       text   DEFAULT '',
    notifiable_type text   DEFAULT 'User',
    sse             jsonb  DEFAULT NULL,
    database_key    text   DEFAULT NULL,
    channels        text[] DEFAULT '{database,sse}',
    traceparent     text   DEFAULT NULL,
    critical        boolean  DEFAULT false,
    escalate_after  interval DEFAULT NULL
) RETURNS uuid[] LANGUAGE plpgsql AS $$
-- The arguments share the columns' names: in SQL below a bare name is the
-- column, and an argument is always qualified with the function's name.
#variable_conflict use_column
DECLARE
    d   jsonb := coalesce(nullif(send_many.data, 'null'::jsonb), '{}');
    s   jsonb := nullif(send_many.sse, 'null'::jsonb);
    k   text  := nullif(send_many.database_key, '');
    tp  text  := nullif(send_many.traceparent, '');
    via text[];
    ids uuid[];
    f   record;
    c   text;
BEGIN
    IF send_many.type IS NULL OR send_many.type = '' THEN
        RAISE EXCEPTION 'bellhop: invalid notification: type is empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF send_many.notifiable_type IS NULL OR send_many.notifiable_type = '' THEN
        RAISE EXCEPTION 'bellhop: invalid notification: notifiable_type is empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF send_many.tenant_id IS NULL THEN
        RAISE EXCEPTION 'bellhop: invalid notification: tenant_id is null'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass '''' (the default) for no tenant.';
    END IF;
    FOR f IN VALUES ('type', send_many.type), ('tenant_id', send_many.tenant_id),
                    ('notifiable_type', send_many.notifiable_type), ('database_key', k) LOOP
        IF octet_length(f.column2) > 255 THEN
            RAISE EXCEPTION 'bellhop: invalid notification: % is % bytes, over the limit of 255', f.column1, octet_length(f.column2)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;

    IF jsonb_typeof(d) <> 'object' THEN
        RAISE EXCEPTION 'bellhop: invalid notification: data must be a JSON object, not a JSON %', jsonb_typeof(d)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Measured as stored, as the table's constraints and the outbox do.
    IF octet_length(d::text) > 65536 THEN
        RAISE EXCEPTION 'bellhop: invalid notification: data is % bytes of JSON as PostgreSQL stores it, over the limit of 65536', octet_length(d::text)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF s IS NOT NULL AND jsonb_typeof(s) <> 'object' THEN
        RAISE EXCEPTION 'bellhop: invalid notification: sse must be a JSON object or NULL, not a JSON %', jsonb_typeof(s)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(s::text) > 4096 THEN
        RAISE EXCEPTION 'bellhop: invalid notification: sse is % bytes of JSON as PostgreSQL stores it, over the limit of 4096', octet_length(s::text)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- The table's check (notifications_traceparent_w3c), with the
    -- function's words.
    IF tp IS NOT NULL AND (tp !~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'
                           OR substr(tp, 4, 32) = repeat('0', 32) OR substr(tp, 37, 16) = repeat('0', 16)) THEN
        RAISE EXCEPTION 'bellhop: invalid notification: traceparent % is not a W3C traceparent', to_json(left(tp, 64))::text
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass 00-<32 lower-case hex digits: trace id>-<16: parent span id>-<2: flags>, ids not all zero, or NULL.';
    END IF;

    IF send_many.channels IS NULL OR cardinality(send_many.channels) = 0 THEN
        RAISE EXCEPTION 'bellhop: invalid notification: channels is empty'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass ''{database}'', ''{sse}'', ''{database,sse}'' (the default), optionally with ''webhook''.';
    END IF;
    FOREACH c IN ARRAY send_many.channels LOOP
        IF c IS NULL OR c NOT IN ('database', 'sse', 'webhook') THEN
            RAISE EXCEPTION 'bellhop: invalid notification: channels has unknown channel % (want "database", "sse" or "webhook")', coalesce(to_json(c)::text, 'NULL')
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    via := ARRAY(SELECT v FROM unnest('{database,sse,webhook}'::text[]) AS v WHERE v = ANY (send_many.channels));
    IF send_many.critical IS NULL THEN
        RAISE EXCEPTION 'bellhop: invalid notification: critical is null' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF send_many.escalate_after IS NOT NULL AND send_many.escalate_after <= '0'::interval THEN
        RAISE EXCEPTION 'bellhop: invalid notification: escalate_after must be positive, not %', send_many.escalate_after
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    IF send_many.notifiable_ids IS NULL THEN
        RAISE EXCEPTION 'bellhop: invalid notification: notifiable_ids is null' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cardinality(send_many.notifiable_ids) = 0 THEN
        RETURN '{}';
    END IF;
    IF array_ndims(send_many.notifiable_ids) > 1 THEN
        RAISE EXCEPTION 'bellhop: invalid notification: notifiable_ids must be a one-dimensional array' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR i IN array_lower(send_many.notifiable_ids, 1) .. array_upper(send_many.notifiable_ids, 1) LOOP
        IF send_many.notifiable_ids[i] IS NULL OR send_many.notifiable_ids[i] = '' THEN
            RAISE EXCEPTION 'bellhop: invalid notification: notifiable_ids[%] is empty', i USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF octet_length(send_many.notifiable_ids[i]) > 255 THEN
            RAISE EXCEPTION 'bellhop: invalid notification: notifiable_ids[%] is % bytes, over the limit of 255', i, octet_length(send_many.notifiable_ids[i])
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;

    -- The outbox's statements (outbox/sql/send.sql): a plain insert, or the
    -- progress upsert, which replaces the payload, type and channels, makes
    -- the row unread and restores it if deleted, and keeps created_at.
    IF k IS NULL THEN
        WITH r AS (
            INSERT INTO notifications AS n
                (tenant_id, notifiable_type, notifiable_id, type, data, sse, channels, traceparent,
                 critical, escalate_after)
            SELECT send_many.tenant_id, send_many.notifiable_type, u.nid, send_many.type, d, s, via, tp,
                   send_many.critical, send_many.escalate_after
            FROM (SELECT DISTINCT nid FROM unnest(send_many.notifiable_ids) AS nid) AS u
            RETURNING n.notifiable_id AS nid, n.id
        )
        SELECT array_agg(r.id ORDER BY o.ord) INTO ids
        FROM unnest(send_many.notifiable_ids) WITH ORDINALITY AS o (nid, ord)
        JOIN r ON r.nid = o.nid;
    ELSE
        WITH r AS (
            INSERT INTO notifications AS n
                (tenant_id, notifiable_type, notifiable_id, type, data, sse, channels, database_key, traceparent,
                 critical, escalate_after)
            SELECT send_many.tenant_id, send_many.notifiable_type, u.nid, send_many.type, d, s, via, k, tp,
                   send_many.critical, send_many.escalate_after
            FROM (SELECT DISTINCT nid FROM unnest(send_many.notifiable_ids) AS nid) AS u
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
                read_at = NULL,
                deleted_at = NULL,
                updated_at = now()
            RETURNING n.notifiable_id AS nid, n.id
        )
        SELECT array_agg(r.id ORDER BY o.ord) INTO ids
        FROM unnest(send_many.notifiable_ids) WITH ORDINALITY AS o (nid, ord)
        JOIN r ON r.nid = o.nid;
    END IF;
    RETURN ids;
END
$$;

-- One notification for one recipient; returns its row's id. As send_many,
-- with the recipient's id named notifiable_id.
CREATE FUNCTION send(
    notifiable_id   text,
    type            text,
    data            jsonb  DEFAULT '{}',
    tenant_id       text   DEFAULT '',
    notifiable_type text   DEFAULT 'User',
    sse             jsonb  DEFAULT NULL,
    database_key    text   DEFAULT NULL,
    channels        text[] DEFAULT '{database,sse}',
    traceparent     text   DEFAULT NULL,
    critical        boolean  DEFAULT false,
    escalate_after  interval DEFAULT NULL
) RETURNS uuid LANGUAGE plpgsql AS $$
BEGIN
    IF send.notifiable_id IS NULL OR send.notifiable_id = '' THEN
        RAISE EXCEPTION 'bellhop: invalid notification: notifiable_id is empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(send.notifiable_id) > 255 THEN
        RAISE EXCEPTION 'bellhop: invalid notification: notifiable_id is % bytes, over the limit of 255', octet_length(send.notifiable_id)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN (send_many(ARRAY[send.notifiable_id], send.type, send.data, send.tenant_id,
                      send.notifiable_type, send.sse, send.database_key, send.channels,
                      send.traceparent, send.critical, send.escalate_after))[1];
END
$$;

DO $$
BEGIN
    IF current_schema() IS NULL THEN
        RAISE EXCEPTION 'bellhop: no schema to create the send functions in'
            USING HINT = 'SET search_path TO bellhop (your schema) before applying the migrations.';
    END IF;
    EXECUTE format('ALTER FUNCTION send_many(text[], text, jsonb, text, text, jsonb, text, text[], text, boolean, interval) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION send(text, text, jsonb, text, text, jsonb, text, text[], text, boolean, interval) SET search_path = %I, pg_temp', current_schema());
END
$$;

-- Only the writer role (writer.sql) and the owner may call them.
REVOKE EXECUTE ON FUNCTION send_many(text[], text, jsonb, text, text, jsonb, text, text[], text, boolean, interval) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION send(text, text, jsonb, text, text, jsonb, text, text[], text, boolean, interval) FROM PUBLIC;


DO $$
DECLARE
    g text;
BEGIN
    FOR g IN SELECT unnest(string_to_array(nullif(current_setting('bellhop.send_grantees'), ''), ',')) LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION send(text, text, jsonb, text, text, jsonb, text, text[], text, boolean, interval), '
                       'send_many(text[], text, jsonb, text, text, jsonb, text, text[], text, boolean, interval) TO %s', g);
    END LOOP;
END
$$;

-- +goose StatementEnd
