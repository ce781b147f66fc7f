-- Preferences, critical notifications, the webhook channel and unread
-- escalation (issue 14, items 5 and 6).
--
-- preferences: per recipient, per notification type ('*' for every type
-- the recipient has no row of its own for) and per channel, whether the
-- channel is on. No row: on. The relay reads them: a type muted for
-- 'database' is neither listed nor counted, one muted for 'sse' is stored
-- and listed but not pushed, one muted for 'webhook' is not posted. A
-- critical notification ignores them. Writers never read this table: the
-- write stays a plain INSERT.
--
-- channels may include 'webhook': the relay enqueues a River job, in the
-- transaction that logs the row, that posts it to the application's
-- webhook URL. escalate_after, when set, makes the relay post
-- notification.unread that long after the row was created if it is still
-- unread then.

-- +goose Up
-- +goose StatementBegin

-- Both columns have constant defaults (or none): adding them rewrites
-- nothing.
ALTER TABLE notifications
    ADD COLUMN critical boolean NOT NULL DEFAULT false,
    ADD COLUMN escalate_after interval,
    ADD CONSTRAINT notifications_escalate_after_positive CHECK (escalate_after > '0'::interval);

-- Wider than before: every existing row passes, so the check is validated
-- without blocking writers (VALIDATE takes a SHARE UPDATE EXCLUSIVE lock).
ALTER TABLE notifications
    DROP CONSTRAINT notifications_channels_valid,
    ADD CONSTRAINT notifications_channels_valid CHECK (
        cardinality(channels) > 0 AND channels <@ '{database,sse,webhook}'::text[]) NOT VALID;
ALTER TABLE notifications VALIDATE CONSTRAINT notifications_channels_valid;

CREATE TABLE preferences (
    tenant_id       text        NOT NULL,
    notifiable_type text        NOT NULL,
    notifiable_id   text        NOT NULL,
    -- A notification type, or '*': every type without a row of its own.
    type            text        NOT NULL,
    channel         text        NOT NULL,
    enabled         boolean     NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, notifiable_type, notifiable_id, channel, type),
    CONSTRAINT preferences_channel_valid CHECK (channel IN ('database', 'sse', 'webhook')),
    CONSTRAINT preferences_type_valid CHECK (type <> '' AND octet_length(type) <= 255)
);

-- The event streams' view gains critical (a muted type is still pushed
-- when it is critical). New columns go last: CREATE OR REPLACE VIEW keeps
-- the old ones in place.
CREATE OR REPLACE VIEW relay_events AS
SELECT l.seq, n.id IS NOT NULL AS current, coalesce(n.id::text, '') AS id,
       l.tenant_id, l.notifiable_type, l.notifiable_id,
       coalesce(n.type, '') AS type, coalesce(n.op, '') AS op, n.sse, n.database_key, n.read_at,
       coalesce('sse' = ANY (n.channels), false) AS live, coalesce(n.updated_at, l.logged_at) AS changed,
       n.traceparent, coalesce(n.critical, false) AS critical
FROM relay_log AS l
LEFT JOIN notifications AS n ON n.id = l.id AND n.xid = l.xid;

-- The send functions take critical and escalate_after, and the webhook
-- channel; otherwise as in 00007. Keep who may execute the functions across
-- the new signature: the
-- grantees wait in a transaction-local setting.
SELECT set_config('bellhop.send_grantees', coalesce(string_agg(DISTINCT a.grantee::regrole::text, ','), ''), true)
FROM pg_proc AS p, aclexplode(p.proacl) AS a
WHERE p.oid IN ('send(text, text, jsonb, text, text, jsonb, text, text[], text)'::regprocedure,
                'send_many(text[], text, jsonb, text, text, jsonb, text, text[], text)'::regprocedure)
  AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner;

DROP FUNCTION send(text, text, jsonb, text, text, jsonb, text, text[], text);
DROP FUNCTION send_many(text[], text, jsonb, text, text, jsonb, text, text[], text);

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

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM notifications WHERE channels = '{webhook}') THEN
        RAISE EXCEPTION 'bellhop: notifications go to the webhook channel only, which the older schema lacks'
            USING HINT = 'Delete them (DELETE FROM notifications WHERE channels = ''{webhook}'') and migrate down again.';
    END IF;
END
$$;
SELECT set_config('bellhop.quiet', 'on', true);
UPDATE notifications SET channels = array_remove(channels, 'webhook') WHERE 'webhook' = ANY (channels);
SELECT set_config('bellhop.quiet', '', true);
-- Keep who may execute the functions across the new signature: the
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
    traceparent     text   DEFAULT NULL
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
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass ''{database}'', ''{sse}'' or ''{database,sse}'' (the default).';
    END IF;
    FOREACH c IN ARRAY send_many.channels LOOP
        IF c IS NULL OR c NOT IN ('database', 'sse') THEN
            RAISE EXCEPTION 'bellhop: invalid notification: channels has unknown channel % (want "database" or "sse")', coalesce(to_json(c)::text, 'NULL')
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    via := ARRAY(SELECT v FROM unnest('{database,sse}'::text[]) AS v WHERE v = ANY (send_many.channels));

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
                (tenant_id, notifiable_type, notifiable_id, type, data, sse, channels, traceparent)
            SELECT send_many.tenant_id, send_many.notifiable_type, u.nid, send_many.type, d, s, via, tp
            FROM (SELECT DISTINCT nid FROM unnest(send_many.notifiable_ids) AS nid) AS u
            RETURNING n.notifiable_id AS nid, n.id
        )
        SELECT array_agg(r.id ORDER BY o.ord) INTO ids
        FROM unnest(send_many.notifiable_ids) WITH ORDINALITY AS o (nid, ord)
        JOIN r ON r.nid = o.nid;
    ELSE
        WITH r AS (
            INSERT INTO notifications AS n
                (tenant_id, notifiable_type, notifiable_id, type, data, sse, channels, database_key, traceparent)
            SELECT send_many.tenant_id, send_many.notifiable_type, u.nid, send_many.type, d, s, via, k, tp
            FROM (SELECT DISTINCT nid FROM unnest(send_many.notifiable_ids) AS nid) AS u
            ON CONFLICT (tenant_id, notifiable_type, notifiable_id, database_key)
                WHERE database_key IS NOT NULL
            DO UPDATE SET
                type = EXCLUDED.type,
                data = EXCLUDED.data,
                sse = EXCLUDED.sse,
                channels = EXCLUDED.channels,
                traceparent = EXCLUDED.traceparent,
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
    traceparent     text   DEFAULT NULL
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
                      send.traceparent))[1];
END
$$;

DO $$
BEGIN
    IF current_schema() IS NULL THEN
        RAISE EXCEPTION 'bellhop: no schema to create the send functions in'
            USING HINT = 'SET search_path TO bellhop (your schema) before applying the migrations.';
    END IF;
    EXECUTE format('ALTER FUNCTION send_many(text[], text, jsonb, text, text, jsonb, text, text[], text) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION send(text, text, jsonb, text, text, jsonb, text, text[], text) SET search_path = %I, pg_temp', current_schema());
END
$$;

-- Only the writer role (writer.sql) and the owner may call them.
REVOKE EXECUTE ON FUNCTION send_many(text[], text, jsonb, text, text, jsonb, text, text[], text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION send(text, text, jsonb, text, text, jsonb, text, text[], text) FROM PUBLIC;


DO $$
DECLARE
    g text;
BEGIN
    FOR g IN SELECT unnest(string_to_array(nullif(current_setting('bellhop.send_grantees'), ''), ',')) LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION send(text, text, jsonb, text, text, jsonb, text, text[], text), '
                       'send_many(text[], text, jsonb, text, text, jsonb, text, text[], text) TO %s', g);
    END LOOP;
END
$$;

DROP VIEW relay_events;
CREATE VIEW relay_events AS
SELECT l.seq, n.id IS NOT NULL AS current, coalesce(n.id::text, '') AS id,
       l.tenant_id, l.notifiable_type, l.notifiable_id,
       coalesce(n.type, '') AS type, coalesce(n.op, '') AS op, n.sse, n.database_key, n.read_at,
       coalesce('sse' = ANY (n.channels), false) AS live, coalesce(n.updated_at, l.logged_at) AS changed,
       n.traceparent
FROM relay_log AS l
LEFT JOIN notifications AS n ON n.id = l.id AND n.xid = l.xid;
DROP TABLE preferences;
ALTER TABLE notifications
    DROP CONSTRAINT notifications_channels_valid,
    ADD CONSTRAINT notifications_channels_valid CHECK (
        cardinality(channels) > 0 AND channels <@ '{database,sse}'::text[]);
ALTER TABLE notifications DROP COLUMN critical, DROP COLUMN escalate_after;
-- +goose StatementEnd
