-- Event ids survive a change of database server. Seqs follow the server's
-- clock; a standby promoted without the last stamps (asynchronous
-- replication), whose clock is a little behind the old primary's, would
-- hand out again seqs that clients already hold, and a client resuming from
-- one would skip real events. The relay now records which server stamped
-- last (its postmaster start time: it changes on every start of a server,
-- and differs between a primary and any standby) and, on the first stamp on
-- another server, jumps the head ahead of the clock by a margin (see Stamp
-- in worker/sql/worker.sql).

-- +goose Up
-- +goose StatementBegin
-- The server the head was last moved on. This migration's server counts as
-- the current one: the head needs no jump for being upgraded.
ALTER TABLE relay_state ADD COLUMN server_started timestamptz;
UPDATE relay_state SET server_started = pg_postmaster_start_time();
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
ALTER TABLE relay_state DROP COLUMN server_started;
-- +goose StatementEnd
