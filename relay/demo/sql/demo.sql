-- The demo's own token secret, one per schema. It is never the
-- application's BELLHOP_JWT_SECRET, and it survives a restart so that the
-- cookies of open pages stay valid when the demo comes back.

-- name: CreateSecretTable
CREATE TABLE IF NOT EXISTS bellhop.demo_secret (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    secret   text    NOT NULL
);

-- name: Secret
-- $1 is a fresh random secret, kept only if the schema has none yet.
WITH fresh AS (
    INSERT INTO bellhop.demo_secret (secret) VALUES ($1)
    ON CONFLICT (only_row) DO NOTHING
    RETURNING secret
)
SELECT secret FROM fresh
UNION ALL
SELECT secret FROM bellhop.demo_secret
LIMIT 1;
