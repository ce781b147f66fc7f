-- A send for writers in any language: bellhop.send and bellhop.send_many,
-- the Go outbox's Send and SendMany as SQL functions, with its validation,
-- its limits and its progress upsert, so that a writer gets a clear error
-- naming the argument instead of a constraint's name (the table's CHECK
-- constraints from 00005 still hold for every writer).
--
--   SELECT bellhop.send(notifiable_id => '42', type => 'invoice.paid',
--                       data => '{"invoiceId": "1001"}');
--
-- SECURITY INVOKER (the default): the functions write with the caller's
-- privileges, so the writer role's grants (writer.sql) govern, and EXECUTE
-- alone gives nothing. search_path is pinned to the schema they were created
-- in (this migration's current_schema), with pg_temp last: a caller's
-- search_path need not include Bellhop's schema, and a temporary table of
-- the caller's named notifications must not catch the insert.
--
-- Errors are SQLSTATE 22023 (invalid_parameter_value), raised before
-- anything is written; the message names the argument and the limit, in
-- the outbox's words.

-- +goose Up
-- +goose StatementBegin

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
    channels        text[] DEFAULT '{database,sse}'
) RETURNS uuid[] LANGUAGE plpgsql AS $$
-- The arguments share the columns' names: in SQL below a bare name is the
-- column, and an argument is always qualified with the function's name.
#variable_conflict use_column
DECLARE
    d   jsonb := coalesce(nullif(send_many.data, 'null'::jsonb), '{}');
    s   jsonb := nullif(send_many.sse, 'null'::jsonb);
    k   text  := nullif(send_many.database_key, '');
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
                (tenant_id, notifiable_type, notifiable_id, type, data, sse, channels)
            SELECT send_many.tenant_id, send_many.notifiable_type, u.nid, send_many.type, d, s, via
            FROM (SELECT DISTINCT nid FROM unnest(send_many.notifiable_ids) AS nid) AS u
            RETURNING n.notifiable_id AS nid, n.id
        )
        SELECT array_agg(r.id ORDER BY o.ord) INTO ids
        FROM unnest(send_many.notifiable_ids) WITH ORDINALITY AS o (nid, ord)
        JOIN r ON r.nid = o.nid;
    ELSE
        WITH r AS (
            INSERT INTO notifications AS n
                (tenant_id, notifiable_type, notifiable_id, type, data, sse, channels, database_key)
            SELECT send_many.tenant_id, send_many.notifiable_type, u.nid, send_many.type, d, s, via, k
            FROM (SELECT DISTINCT nid FROM unnest(send_many.notifiable_ids) AS nid) AS u
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
    channels        text[] DEFAULT '{database,sse}'
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
                      send.notifiable_type, send.sse, send.database_key, send.channels))[1];
END
$$;

DO $$
BEGIN
    IF current_schema() IS NULL THEN
        RAISE EXCEPTION 'bellhop: no schema to create the send functions in'
            USING HINT = 'SET search_path TO bellhop (your schema) before applying the migrations.';
    END IF;
    EXECUTE format('ALTER FUNCTION send_many(text[], text, jsonb, text, text, jsonb, text, text[]) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION send(text, text, jsonb, text, text, jsonb, text, text[]) SET search_path = %I, pg_temp', current_schema());
END
$$;

-- Only the writer role (writer.sql) and the owner may call them.
REVOKE EXECUTE ON FUNCTION send_many(text[], text, jsonb, text, text, jsonb, text, text[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION send(text, text, jsonb, text, text, jsonb, text, text[]) FROM PUBLIC;

-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP FUNCTION send(text, text, jsonb, text, text, jsonb, text, text[]);
DROP FUNCTION send_many(text[], text, jsonb, text, text, jsonb, text, text[]);
-- +goose StatementEnd
