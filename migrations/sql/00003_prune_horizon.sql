-- The prune horizon per recipient. Until now the prune job raised one
-- global pruned_seq to the highest seq whose log entry it deleted, and a
-- client resuming from below it got refetch: one backdated read row pruned
-- for one user made every other user's tabs reload. Now each recipient has
-- its own horizon, and the global one is only the floor that old horizons
-- are folded into.

-- +goose Up
-- +goose StatementBegin

-- The highest seq of a recipient's log entries the prune job deleted (with
-- their rows, or aged past the replay window): a client of that recipient
-- resuming from below it may have missed an event and must refetch. A row is
-- folded into relay_state.pruned_seq one replay window after it last moved,
-- so the table holds one row per recipient that had something pruned in
-- the last replay window.
CREATE TABLE relay_horizon (
    tenant_id       text        NOT NULL,
    notifiable_type text        NOT NULL,
    notifiable_id   text        NOT NULL,
    seq             bigint      NOT NULL,
    pruned_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, notifiable_type, notifiable_id)
);

-- The fold takes the oldest rows first.
CREATE INDEX relay_horizon_pruned_at_idx ON relay_horizon (pruned_at);

-- pruned_seq keeps its value: what was pruned before this migration was
-- recorded for everyone, and stays so.
COMMENT ON COLUMN relay_state.pruned_seq IS
    'Every recipient''s prune horizon is at least this: relay_horizon rows are folded into it once a replay window old.';

-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
-- The old code knows only the global horizon: raise it over every
-- recipient's, so that no resume replays across a gap.
UPDATE relay_state
SET pruned_seq = greatest(pruned_seq, (SELECT max(seq) FROM relay_horizon));
COMMENT ON COLUMN relay_state.pruned_seq IS NULL;
DROP TABLE relay_horizon;
-- +goose StatementEnd
