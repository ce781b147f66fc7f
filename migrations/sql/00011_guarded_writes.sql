-- What a role other than the relay's can do to the relay, closed.
--
-- 1. The relayed NOTIFY is signed. NOTIFY and LISTEN take no privilege:
--    any role that may connect can send on <schema>_relayed. A stamp's
--    payload names its batch ("head before hashes"), and a replica with no
--    stream for those recipients moves its cursor to head without reading
--    the log; a forged head made it skip every event below it, and, on the
--    stamping process, raised every later seq (up to bigint's end, where
--    stamping stops). The payload now carries a MAC keyed by notify_key,
--    which only roles that may read relay_state have (the relay's; not the
--    writer role, see writer.sql). A payload whose MAC does not match is
--    only a wake-up: the replica reads the log after its cursor.
--
-- 2. escalate_after is at most 366 days. The stamp turns it into
--    microseconds for the webhook jobs; a writer's '300000 years'
--    overflowed bigint and stopped every stamp, for every tenant, and
--    '1000 years' overflowed Go's time.Duration. The checks bound the
--    interval's length in seconds (extract(epoch): a year is 365.25 days
--    there), not the interval itself, which PostgreSQL compares counting a
--    year as 360 days: '30000 years -10799700 days' is under '366 days' to
--    the comparison and 432 years long, and '-1 year 361 days' is positive
--    to it and -4.25 days long (the second check is named to come after
--    00008's notifications_escalate_after_positive, which PostgreSQL
--    checks first, so a plain negative value keeps its message). Rows
--    written before that break them are set first: clamped to 366 days, or
--    with no escalation when their length is not positive. escalate_after
--    is no column the triggers watch, so that is no change to push. The
--    checks are then validated, every row read once, as in 00005: a NOT
--    VALID check would refuse every later UPDATE of such a row (a mark
--    read, the sweep's expiry of a batch it is in).
--
-- 3. bellhop.quiet, which lets mark-all-read and mark-seen change many rows
--    with one marker row instead of an event each, is honoured only for a
--    role that may write op itself (the relay's: the marker row sets it).
--    Any session may set a custom setting: a writer that set it changed
--    rows without an event, and kept their old xid, so the relay never
--    logged the change and a replay served the new data under the old id.
--
-- 4. A change of channels or critical is a change like the others: it
--    moves the row into or out of the inbox's count and list (channels) or
--    past a recipient's muting (critical), so it is logged, and pushed, as
--    'updated'. The writer role may update both.
--
-- 5. Stamps serialize on a lock only the relay's role can take. They took
--    an advisory lock, and any role may take any advisory lock (pg_locks
--    shows which): one that held it held every stamp back, for every
--    tenant, for as long as it liked. They now lock stamp_lock, a table of
--    no rows that nothing else touches, in SHARE UPDATE EXCLUSIVE mode
--    (lock_stamps: LOCK TABLE is refused outside a transaction block, and
--    the stamp's statements run in the implicit transaction of one round
--    trip). Taking it takes UPDATE, DELETE or TRUNCATE on the table, which
--    only its owner has. A role with USAGE on the schema (the writer role)
--    can still take the weaker locks of a query without any privilege on
--    the table, and hold them: PostgreSQL locks a statement's tables when
--    it parses it and checks privileges when it runs it, and a PREPARE only
--    parses (BEGIN; PREPARE p AS DELETE FROM stamp_lock holds ROW
--    EXCLUSIVE until the transaction ends). SHARE UPDATE EXCLUSIVE
--    conflicts with itself and with none of those (ACCESS SHARE, ROW SHARE,
--    ROW EXCLUSIVE); the statements that take it (VACUUM, ANALYZE, some
--    ALTER TABLE) check ownership first, or release it at once. A relay
--    that runs as another role than the one that migrated needs UPDATE on
--    stamp_lock.

-- +goose Up
-- +goose StatementBegin
CREATE TABLE stamp_lock ();
COMMENT ON TABLE stamp_lock IS 'Locked by every stamp, SHARE UPDATE EXCLUSIVE, until it commits (lock_stamps, 00011): stamps hand out seqs one at a time, in commit order.';
DO $$
BEGIN
    EXECUTE format($f$
        CREATE FUNCTION lock_stamps() RETURNS void LANGUAGE plpgsql AS $b$
        BEGIN
            LOCK TABLE %I.stamp_lock IN SHARE UPDATE EXCLUSIVE MODE;
        END
        $b$ $f$, current_schema());
END
$$;

ALTER TABLE relay_state
    ADD COLUMN notify_key bytea NOT NULL
        DEFAULT sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8'));
ALTER TABLE relay_state ALTER COLUMN notify_key DROP DEFAULT;
COMMENT ON COLUMN relay_state.notify_key IS
    'The key of the MAC on the relayed NOTIFY''s payload (see 00011): random, 256 bits; readable only by the relay''s role.';

UPDATE notifications
SET escalate_after = CASE WHEN extract(epoch FROM escalate_after) > 0 THEN interval '366 days' END
WHERE extract(epoch FROM escalate_after) > 31622400 OR extract(epoch FROM escalate_after) <= 0;
ALTER TABLE notifications
    ADD CONSTRAINT notifications_escalate_after_max_366_days CHECK (extract(epoch FROM escalate_after) <= 31622400),
    ADD CONSTRAINT notifications_escalate_after_seconds_positive CHECK (extract(epoch FROM escalate_after) > 0);

CREATE OR REPLACE FUNCTION notifications_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('bellhop.quiet', true) = 'on' AND has_column_privilege(TG_RELID, 'op', 'INSERT') THEN
        RETURN NEW;
    END IF;
    NEW.op := CASE
        WHEN NEW.deleted_at IS NOT NULL AND OLD.deleted_at IS NULL THEN 'deleted'
        WHEN NEW.expires_at <= now() AND NEW.deleted_at IS NULL THEN 'expired'
        WHEN NEW.data IS DISTINCT FROM OLD.data
          OR NEW.sse IS DISTINCT FROM OLD.sse
          OR NEW.type IS DISTINCT FROM OLD.type
          OR NEW.channels IS DISTINCT FROM OLD.channels
          OR NEW.critical IS DISTINCT FROM OLD.critical
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
    BEFORE UPDATE OF data, sse, type, channels, critical, read_at, deleted_at, updated_at, archived_at, expires_at
    ON notifications
    FOR EACH ROW
    WHEN (OLD.data IS DISTINCT FROM NEW.data
       OR OLD.sse IS DISTINCT FROM NEW.sse
       OR OLD.type IS DISTINCT FROM NEW.type
       OR OLD.channels IS DISTINCT FROM NEW.channels
       OR OLD.critical IS DISTINCT FROM NEW.critical
       OR OLD.read_at IS DISTINCT FROM NEW.read_at
       OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at
       OR OLD.updated_at IS DISTINCT FROM NEW.updated_at
       OR OLD.archived_at IS DISTINCT FROM NEW.archived_at
       OR OLD.expires_at IS DISTINCT FROM NEW.expires_at)
    EXECUTE FUNCTION notifications_changed();

DROP TRIGGER notifications_wake ON notifications;
CREATE TRIGGER notifications_wake
    AFTER INSERT OR UPDATE OF data, sse, type, channels, critical, read_at, deleted_at, updated_at, archived_at, expires_at
    ON notifications
    FOR EACH STATEMENT
    WHEN (pg_sequence_last_value('relay_wake'::regclass) = 1
          AND coalesce(current_setting('bellhop.no_wake', true), '') <> 'on')
    EXECUTE FUNCTION notifications_wake();
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP TRIGGER notifications_wake ON notifications;
CREATE TRIGGER notifications_wake
    AFTER INSERT OR UPDATE OF data, sse, type, read_at, deleted_at, updated_at, archived_at, expires_at ON notifications
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
    IF NEW.op IN ('read', 'unread', 'deleted', 'archived', 'unarchived', 'expired')
       AND NEW.traceparent IS NOT DISTINCT FROM OLD.traceparent THEN
        NEW.traceparent := NULL;
    END IF;
    NEW.updated_at := now();
    NEW.xid := pg_current_xact_id();
    RETURN NEW;
END
$$;
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

ALTER TABLE notifications DROP CONSTRAINT notifications_escalate_after_max_366_days,
    DROP CONSTRAINT notifications_escalate_after_seconds_positive;
ALTER TABLE relay_state DROP COLUMN notify_key;
DROP FUNCTION lock_stamps();
DROP TABLE stamp_lock;
-- +goose StatementEnd
