-- The publication the relay follows with BELLHOP_WAKE_MODE=logical: the
-- relay learns of each commit that writes notification rows from the WAL,
-- by logical decoding (pgoutput), instead of polling for it. It carries the
-- inserts and updates of notifications, and of their columns only id on
-- PostgreSQL 15 and later (the column lists that came with it): a wake-up,
-- not the data. Publications belong to the database, not the schema: this
-- one is named <schema>_wake.
--
-- It costs the writers nothing while wal_level is below logical (the
-- server's default: nothing is decoded then) and the other wake modes
-- never read it. Creating a publication takes the CREATE privilege on the
-- database: without it, this migration skips it with a notice saying what
-- to run, and the relay's logical mode says the same until it exists.

-- +goose Up
-- +goose StatementBegin
DO $$
DECLARE
    name text := current_schema() || '_wake';
BEGIN
    IF NOT has_database_privilege(current_database(), 'CREATE') THEN
        RAISE NOTICE 'publication % not created (this role lacks CREATE on the database); for BELLHOP_WAKE_MODE=logical run as its owner: CREATE PUBLICATION % FOR TABLE %.notifications WITH (publish = ''insert, update'')',
            name, quote_ident(name), quote_ident(current_schema());
        RETURN;
    END IF;
    -- A schema of this name dropped and made again left its publication.
    EXECUTE format('DROP PUBLICATION IF EXISTS %I', name);
    IF current_setting('server_version_num')::int >= 150000 THEN
        EXECUTE format('CREATE PUBLICATION %I FOR TABLE notifications (id) WITH (publish = ''insert, update'')', name);
    ELSE
        EXECUTE format('CREATE PUBLICATION %I FOR TABLE notifications WITH (publish = ''insert, update'')', name);
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('DROP PUBLICATION IF EXISTS %I', current_schema() || '_wake');
END
$$;
-- +goose StatementEnd
