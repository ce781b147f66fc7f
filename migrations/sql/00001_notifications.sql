-- Bellhop's schema. Every name here is unqualified: the runner (relay migrate,
-- or migrations.Up from Go) sets search_path to the configured schema
-- (default "bellhop") before applying it. To apply it with another tool, run
--   CREATE SCHEMA IF NOT EXISTS bellhop; SET search_path TO bellhop;
-- first, then the Up section of each file in order.

-- +goose Up
-- +goose StatementBegin

-- One row per notification, per recipient. Writers only INSERT (or upsert by
-- database_key); the relay stamps relay_seq after commit.
CREATE TABLE notifications (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       text        NOT NULL DEFAULT '',
    notifiable_type text        NOT NULL DEFAULT 'User',
    notifiable_id   text        NOT NULL,
    type            text        NOT NULL,
    -- What the inbox shows.
    data            jsonb       NOT NULL DEFAULT '{}',
    -- The small live payload; when null the event carries id and type only.
    sse             jsonb,
    -- 'database' rows are listed and counted; 'sse' rows are pushed live.
    channels        text[]      NOT NULL DEFAULT '{database,sse}',
    -- A stable key per recipient: sends with the same key update one row.
    database_key    text,
    read_at         timestamptz,
    -- Deletion is soft so that tabs hear of it; the prune job removes the row
    -- once the replay window has passed.
    deleted_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- The last reader-visible change, which the relay pushes as the event's op.
    op              text        NOT NULL DEFAULT 'created',
    -- Assigned after commit by the relay's serialized stamping step: gap-free,
    -- in commit order; the SSE event id. NULL while pending.
    relay_seq       bigint,

    CONSTRAINT notifications_notifiable_id_not_empty CHECK (notifiable_id <> ''),
    CONSTRAINT notifications_notifiable_type_not_empty CHECK (notifiable_type <> ''),
    CONSTRAINT notifications_type_not_empty CHECK (type <> ''),
    CONSTRAINT notifications_data_is_object CHECK (jsonb_typeof(data) = 'object'),
    CONSTRAINT notifications_channels_valid CHECK (
        cardinality(channels) > 0 AND channels <@ '{database,sse}'::text[]),
    CONSTRAINT notifications_op_valid CHECK (
        op IN ('created', 'updated', 'read', 'unread', 'deleted', 'read_all')),
    -- Times a client can parse (RFC 3339 has four-digit years; no infinity).
    CONSTRAINT notifications_times_valid CHECK (
        created_at BETWEEN '0001-01-01' AND '9999-12-31'
        AND updated_at BETWEEN '0001-01-01' AND '9999-12-31'
        AND (read_at IS NULL OR read_at BETWEEN '0001-01-01' AND '9999-12-31')
        AND (deleted_at IS NULL OR deleted_at BETWEEN '0001-01-01' AND '9999-12-31'))
);

-- Unread count per recipient: an index-only count over a partial index.
CREATE INDEX notifications_unread_idx
    ON notifications (tenant_id, notifiable_type, notifiable_id)
    WHERE read_at IS NULL AND deleted_at IS NULL AND 'database' = ANY (channels);

-- The inbox list, newest first, keyset-paginated by (created_at, id).
CREATE INDEX notifications_inbox_idx
    ON notifications (tenant_id, notifiable_type, notifiable_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL AND 'database' = ANY (channels);

-- The pending set the relay stamps; empty when the relay keeps up.
CREATE INDEX notifications_pending_idx
    ON notifications (updated_at, id)
    WHERE relay_seq IS NULL;

-- Tailing by relay_seq (every relay replica) ...
CREATE UNIQUE INDEX notifications_relay_seq_idx
    ON notifications (relay_seq);

-- ... and one recipient's replay from Last-Event-ID.
CREATE INDEX notifications_recipient_seq_idx
    ON notifications (tenant_id, notifiable_type, notifiable_id, relay_seq)
    WHERE relay_seq IS NOT NULL;

-- Progress notifications: one row per recipient and key.
CREATE UNIQUE INDEX notifications_database_key_idx
    ON notifications (tenant_id, notifiable_type, notifiable_id, database_key)
    WHERE database_key IS NOT NULL;

-- The relay's bookkeeping: one row.
CREATE TABLE relay_state (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    -- The highest relay_seq handed out.
    last_seq      bigint  NOT NULL DEFAULT 0,
    -- The highest relay_seq of a row the prune job deleted: a client resuming
    -- from below it may have missed a deletion and must refetch.
    pruned_seq    bigint  NOT NULL DEFAULT 0
);
INSERT INTO relay_state DEFAULT VALUES;

-- The wake flag the triggers read: 1 = NOTIFY the relay on commit, 0 = the
-- relay is busy or polls. A sequence, because reading and setting it ignores
-- transactions and snapshots: a writer sees a flip at once, whatever its
-- isolation level, and the relay's flip never waits for a lock.
CREATE SEQUENCE relay_wake MINVALUE 0 MAXVALUE 1 START 1 NO CYCLE;
SELECT setval('relay_wake', 1, true);

-- A reader-visible update makes the row pending again and records what
-- happened. The relay's own stamping sets only relay_seq and never fires it.
-- bellhop.quiet = 'on' (transaction-local) lets mark-all-read change many
-- rows and announce it once.
CREATE FUNCTION notifications_changed() RETURNS trigger LANGUAGE plpgsql AS $$
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

-- Wakes the relay: once per statement, and only while the relay is idle and
-- waiting (see relay_wake). The payload is constant so Postgres folds every
-- NOTIFY of a transaction into one, delivered at COMMIT and never on ROLLBACK.
-- Names are built from TG_TABLE_SCHEMA because the writer's search_path
-- need not include Bellhop's schema.
CREATE FUNCTION notifications_wake() RETURNS trigger LANGUAGE plpgsql AS $$
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

-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP TABLE notifications;
DROP FUNCTION notifications_changed();
DROP FUNCTION notifications_wake();
DROP TABLE relay_state;
DROP SEQUENCE relay_wake;
-- +goose StatementEnd
