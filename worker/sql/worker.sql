-- The relay's own statements: stamping, the wake flag, pruning.

-- name: HasPending
-- Whether a committed row version is not in the cursor's seen snapshot: it
-- began after seen (xid >= its xmax) or was running then (its xip). During a
-- round this also counts what the round already logged; one more stamp ends
-- the round.
--
-- Only the xids of transactions that have ended are looked up: an index
-- scan over a running transaction's rows would visit every one of them
-- (invisible, so it goes on): 100,000 uncommitted rows made each probe walk
-- 100,000 entries and heap tuples, 2 ms became 37 ms. So the xid range is
-- cut into the gaps between the xids still running in this statement's
-- snapshot (now), one index probe each, and seen's xip is narrowed to the
-- xids that ended since.
--
-- Each probe is "the lowest xid" rather than EXISTS: EXISTS lets the planner
-- expect an early match and scan the table (130 ms at 360,000 rows, the
-- sweep's every second); ordered by xid, only the index will do.
WITH s AS (
    SELECT seen, pg_current_snapshot() AS now,
           (pg_snapshot_xmax(seen)::text::numeric - 1)::text::xid8 AS below_xmax
    FROM bellhop.relay_state
), gaps AS (
    -- (lo, hi), both excluded: from seen's xmax to now's, cut at each xid
    -- running in now.
    SELECT p AS lo, coalesce(lead(p) OVER (ORDER BY p), pg_snapshot_xmax((SELECT now FROM s))) AS hi
    FROM (SELECT below_xmax AS p FROM s
          UNION ALL
          SELECT x FROM s, pg_snapshot_xip(s.now) AS x WHERE x > s.below_xmax) AS points
)
SELECT EXISTS (
           SELECT 1 FROM gaps
           WHERE (SELECT xid FROM bellhop.notifications
                  WHERE xid > gaps.lo AND xid < gaps.hi
                  ORDER BY xid LIMIT 1) IS NOT NULL)
    OR (SELECT xid FROM bellhop.notifications
        WHERE xid = ANY (ARRAY(SELECT x FROM s, pg_snapshot_xip(s.seen) AS x
                               WHERE pg_visible_in_snapshot(x, s.now)))
        ORDER BY xid LIMIT 1) IS NOT NULL;

-- name: Lock
-- Serializes stamping across every relay replica until the transaction ends,
-- so seq is handed out, and committed, in order: lock_stamps locks a table
-- only the relay's role may lock (see 00011; an advisory lock, which any
-- role may take, let any role hold every stamp back). And, transaction-local,
-- the planner settings of the stamp that follows: right after a bulk insert
-- the table's statistics still say the new set is tiny, and the planner
-- picks a bitmap or sequential scan and sorts every new row to take one
-- batch: 240 ms per batch at 100,000 pending, where the xid index, already
-- in order, takes 3 ms. A latency path is never worth compiling
-- either: a backlog's estimates would cross jit_above_cost. One statement,
-- not two: a stamp runs every millisecond while rows come.
--
-- Nor is the stamp worth planning again and again: its plan is the xid
-- index's whatever the parameters, but PostgreSQL's plan cache, left to
-- choose, plans a statement afresh for its first five executions and
-- whenever its generic plan's estimate looks dearer than theirs, which
-- for the stamp depends on the table's statistics of the moment. Planning
-- it takes about 1 ms, more than executing one that finds nothing.
-- Measured on 2026-12-01: with a 100,000-row table, 0.40 ms of backend
-- CPU per empty stamp on the cached generic plan against 1.18 ms planned
-- each time; in scenario 1 of cmd/bench (pg_stat_statements), 348 plans
-- in 5,465 stamps, 359 ms of planning beside 706 ms of execution, against
-- 4 plans (9 ms). A backlog of 50,000 rows is stamped as fast on either
-- plan.
SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true),
       set_config('jit', 'off', true), set_config('plan_cache_mode', 'force_generic_plan', true),
       bellhop.lock_stamps();

-- name: Stamp
-- Stamps up to $1 rows the cursor has not seen, in (xid, id) order, with
-- new seqs (relay_log entries), moves the cursor and, if it stamped any, announces the new head
-- on channel $2 (delivered at commit; none when $2 is ''). Returns the entries it stamped, in the
-- columns of bellhoptype.Event (named as in the relay_events view the hub
-- reads), plus the head before them (head_before),
-- so the stamping process pushes them without reading them back, and what
-- the webhook jobs need (xid, created_at, listed, via_webhook, hook_data:
-- the data of webhook rows only, escalate_us, first_logged). The
-- notification rows are only read.
--
-- Seqs increase strictly in commit order, with gaps: a batch takes the
-- numbers just below the clock in microseconds when the head is further
-- behind, else those right after the head.
--
-- On another server than the one that moved the head last (server_started,
-- the postmaster's start time: new on every server start, and never the
-- same on a standby as on its primary), the first stamp that stamps rows
-- jumps ten minutes of microseconds past the clock (and past the head and
-- $3), and records the server. That server may lack the last stamps of the old one: a
-- standby promoted without them (asynchronous replication), or a server
-- that lost asynchronously committed stamps in a crash. Their seqs were at
-- most the old head, which followed the old server's clock; the clocks of
-- two servers, or of one across a restart, differ by far less than ten
-- minutes, so no seq a client may hold is handed out again. Detected here,
-- in the statement, not at a relay's start: relays that outlive a failover
-- see it too.
--
-- A round starts from a fresh snapshot (next) and stamps every row version
-- visible in it but not in seen: those whose xid is at or past seen's xmax,
-- and those of transactions seen's xip lists as running. A round longer
-- than one batch goes on from (next_xid, next_id) in the next stamp; a row
-- changed meanwhile has a new xid, not in next, and comes in the next round.
WITH state AS (
    SELECT last_seq, seen, notify_key,
           floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS clock_us,
           server_started IS DISTINCT FROM pg_postmaster_start_time() AS new_server,
           coalesce(next, pg_current_snapshot()) AS next,
           CASE WHEN next IS NULL THEN '0'::xid8 ELSE next_xid END AS after_xid,
           CASE WHEN next IS NULL THEN '00000000-0000-0000-0000-000000000000'::uuid ELSE next_id END AS after_id,
           -- (xid, id) > (xmax - 1, the greatest uuid) is xid >= xmax, as
           -- a bound on both columns.
           (pg_snapshot_xmax(seen)::text::numeric - 1)::text::xid8 AS below_xmax,
           'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid AS last_uuid,
           -- The floor ($3) is trusted up to a day past the clock: no seq
           -- a client can hold is further ahead than the failover jumps
           -- put it, and a corrupt one must not use up bigint.
           least($3::bigint, floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint + 86400000000) AS floor_seq
    FROM bellhop.relay_state
), st AS (
    -- The range branch below starts from one row bound, the later of the
    -- round's position and seen's xmax: two bounds on the leading column
    -- would let the index scan start from the lower one.
    SELECT *,
           CASE WHEN (after_xid, after_id) > (below_xmax, last_uuid) THEN after_xid ELSE below_xmax END AS from_xid,
           CASE WHEN (after_xid, after_id) > (below_xmax, last_uuid) THEN after_id ELSE last_uuid END AS from_id
    FROM state
), gaps AS (
    -- The range branch's stretches of the xid index: from the round's
    -- position to next's xmax, cut at each xid still running in next. The
    -- index scan of a running transaction's xid would visit each of its
    -- rows, all invisible to next, however many (see HasPending). Each gap
    -- is (lo_xid, lo_id) < (xid, id), xid < hi.
    SELECT row_number() OVER (ORDER BY lo_xid) AS i, lo_xid, lo_id,
           coalesce(lead(lo_xid) OVER (ORDER BY lo_xid), pg_snapshot_xmax((SELECT next FROM st))) AS hi
    FROM (SELECT from_xid AS lo_xid, from_id AS lo_id FROM st
          UNION ALL
          SELECT x, last_uuid FROM st, pg_snapshot_xip(st.next) AS x WHERE x > st.from_xid) AS points
), batch AS (
    -- The state is read through scalar subqueries: one row, which the
    -- planner then knows, and parameters an index scan can start from. Each
    -- branch walks the xid index in order and stops at $1 (the range
    -- branch gap after gap, in order, an incremental sort stopping once it
    -- has $1), so at most about 2 x $1 rows are sorted however large the
    -- backlog. Every xid of seen's xip precedes the range branch's.
    SELECT u.*, row_number() OVER (ORDER BY u.xid, u.id) AS k
    FROM (
        (SELECT r.*
         FROM (SELECT * FROM gaps ORDER BY i) AS g
         CROSS JOIN LATERAL (
             SELECT n.id, n.xid, n.tenant_id, n.notifiable_type, n.notifiable_id,
                    n.type, n.op, n.sse, n.database_key, n.read_at, n.channels, n.updated_at, n.traceparent,
                    n.critical, n.created_at, n.escalate_after,
                    CASE WHEN 'webhook' = ANY (n.channels) THEN n.data END AS hook_data
             FROM bellhop.notifications AS n
             WHERE (n.xid, n.id) > (g.lo_xid, g.lo_id) AND n.xid < g.hi
             ORDER BY n.xid, n.id
             LIMIT $1) AS r
         ORDER BY g.i, r.xid, r.id
         LIMIT $1)
        UNION ALL
        -- Only the xids that have ended by next.
        (SELECT n.id, n.xid, n.tenant_id, n.notifiable_type, n.notifiable_id,
                n.type, n.op, n.sse, n.database_key, n.read_at, n.channels, n.updated_at, n.traceparent,
                    n.critical, n.created_at, n.escalate_after,
                    CASE WHEN 'webhook' = ANY (n.channels) THEN n.data END AS hook_data
         FROM bellhop.notifications AS n
         WHERE n.xid = ANY (ARRAY(SELECT x FROM pg_snapshot_xip((SELECT seen FROM st)) AS x
                                  WHERE pg_visible_in_snapshot(x, (SELECT next FROM st))))
           AND (n.xid, n.id) > ((SELECT after_xid FROM st), (SELECT after_id FROM st))
         ORDER BY n.xid, n.id
         LIMIT $1)
    ) AS u
    ORDER BY u.xid, u.id
    LIMIT $1
), counted AS (
    -- Seqs follow the head, and the clock (see Durability), and never come
    -- below $3, the highest seq the stamping process has pushed; on a new
    -- server they jump (600,000,000 µs: ten minutes).
    SELECT count(*) AS n,
           CASE WHEN (SELECT new_server FROM st)
                THEN greatest((SELECT last_seq FROM st), (SELECT floor_seq FROM st), (SELECT clock_us FROM st)) + 600000000
                ELSE greatest((SELECT last_seq FROM st), (SELECT floor_seq FROM st), (SELECT clock_us FROM st) - count(*))
           END AS base
    FROM batch
), logged AS (
    INSERT INTO bellhop.relay_log (seq, id, xid, tenant_id, notifiable_type, notifiable_id)
    SELECT (SELECT base FROM counted) + b.k, b.id, b.xid, b.tenant_id, b.notifiable_type, b.notifiable_id
    FROM batch AS b
    RETURNING seq
), moved AS (
    -- Writes only when there is something to record: a round that logged
    -- rows, or one that must end. An empty poll writes nothing.
    UPDATE bellhop.relay_state
    SET last_seq = CASE WHEN (SELECT n FROM counted) > 0 THEN (SELECT base + n FROM counted) ELSE last_seq END,
        server_started = CASE WHEN (SELECT n FROM counted) > 0 THEN pg_postmaster_start_time() ELSE server_started END,
        seen     = CASE WHEN (SELECT n FROM counted) < $1 THEN (SELECT next FROM st) ELSE seen END,
        next     = CASE WHEN (SELECT n FROM counted) < $1 THEN NULL ELSE (SELECT next FROM st) END,
        next_xid = coalesce((SELECT xid FROM batch WHERE k = $1), '0'),
        next_id  = coalesce((SELECT id FROM batch WHERE k = $1), '00000000-0000-0000-0000-000000000000')
    WHERE (SELECT n FROM counted) > 0 OR next IS NOT NULL
)
SELECT (SELECT base FROM counted) + b.k AS seq, true AS current, b.id::text AS id,
       b.tenant_id, b.notifiable_type, b.notifiable_id, b.type, b.op, b.sse, b.database_key, b.read_at,
       'sse' = ANY (b.channels) AS via_sse, b.updated_at AS changed, b.traceparent, b.critical,
       (SELECT last_seq FROM st) AS head_before,
       -- For the webhook channel and escalation (see webhook.go): the
       -- worker looks at these only when it has a webhook URL.
       b.xid::text AS xid, b.created_at, 'database' = ANY (b.channels) AS listed,
       'webhook' = ANY (b.channels) AS via_webhook, b.hook_data,
       -- 366 days at most, 00011's check; bounded here too, should the
       -- check be gone: a value that overflowed bigint stopped every stamp.
       -- NULL stays NULL (least() would skip it).
       CASE WHEN b.escalate_after IS NOT NULL
            THEN (greatest(least(extract(epoch FROM b.escalate_after), 31622400), 0) * 1000000)::bigint END AS escalate_us,
       -- Whether this is the row's first entry: a row created and changed
       -- again before a stamp (in one transaction, or read at once) is
       -- logged once, with its latest op, and must still count as new.
       -- Looked up only for rows that go to the webhook channel or
       -- escalate ($4: the types with a default escalation), in the
       -- recipient's entries; the statement does not see its own inserts.
       CASE WHEN b.op = 'created' THEN true
            WHEN 'webhook' = ANY (b.channels) OR b.escalate_after IS NOT NULL OR b.type = ANY ($4::text[])
            THEN NOT EXISTS (SELECT 1 FROM bellhop.relay_log AS l
                             WHERE l.tenant_id = b.tenant_id AND l.notifiable_type = b.notifiable_type
                               AND l.notifiable_id = b.notifiable_id AND l.id = b.id)
            ELSE false END AS first_logged
FROM batch AS b
LEFT JOIN LATERAL (
    -- The payload is the new head; when it fits, then the head before, a
    -- MAC and the recipients the batch touches (the first 8 hex digits of
    -- the md5 of tenant, type and id joined by U+001F), so that a replica
    -- with no stream for them moves its cursor without a read (see
    -- relay/hub.go). Any role may NOTIFY: the MAC, the first 32 hex digits
    -- of sha256(notify_key || "head before hashes"), tells the relay's own
    -- payloads from forged ones (see 00011; the digest, cut in half, leaves
    -- nothing to extend). No NOTIFY when $2 is '': a broker carries the
    -- batch (fanout/).
    SELECT pg_notify($2, p.head::text
                         || coalesce(' ' || p.before || ' '
                                     || left(encode(sha256((SELECT notify_key FROM st)
                                                           || convert_to(p.head || ' ' || p.before || ' ' || p.names, 'UTF8')), 'hex'), 32)
                                     || ' ' || p.names, ''))
    FROM (SELECT (SELECT base + n FROM counted) AS head, (SELECT last_seq FROM st) AS before,
                 (SELECT string_agg(r.h, ' ')
                  FROM (SELECT DISTINCT left(md5(tenant_id || chr(31) || notifiable_type
                                                 || chr(31) || notifiable_id), 8) AS h
                        FROM batch) AS r
                  HAVING count(*) <= 800) AS names) AS p
    WHERE b.k = 1 AND $2 <> ''
) AS announced ON true
ORDER BY b.k;

-- name: TryLease
-- The drain lease (see leased in jobs.go): session-level, one holder.
SELECT pg_try_advisory_lock($1, hashtext($2));

-- name: Unlease
SELECT pg_advisory_unlock($1, hashtext($2));

-- name: Head
SELECT last_seq FROM bellhop.relay_state;

-- name: Announce
-- A stamp's new head, when the broker that was to carry it failed.
SELECT pg_notify($1, $2);

-- name: Listeners
-- How many processes other than the stamping one listen on the relayed
-- channel: every relay hub's LISTEN connection holds ($1, hashtext($2))
-- shared for as long as it lives (RegisterListener in relay/sql); $3 is
-- the pid of the stamping process's own, 0 if none. pg_locks is the
-- server's lock table as it is now, read whole: about 0.1 ms, more than an
-- empty stamp's lock, so a stamp asks at most every few hundred
-- milliseconds (see audience in stamp.go).
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid = $1::int4::oid AND objid = hashtext($2)::oid AND objsubid = 2 AND granted AND pid <> $3::int4;

-- name: Durability
-- Transaction-local, after the stamp: may it commit without waiting for its
-- WAL flush? Waiting doubles the flushes behind every event (the writer's,
-- then the stamp's) and, measured, half the commit-to-event latency. A stamp
-- lost in a database crash is harmless in itself (the cursor goes back with
-- it and the rows are logged again, pushed twice under new ids) as long as
-- no seq it handed out is handed out again for another row: a client that
-- got it would skip that row when it resumes. So the stamp waits for its
-- flush unless its head is at most the database clock in microseconds; seqs
-- after a crash start above the clock (see Stamp), which by then has passed
-- every seq lost; a server restart also jumps them ten minutes ahead.
-- After such a jump the head stays ahead of the clock for those ten minutes,
-- and stamps wait for their flush meanwhile: an asynchronous stamp is only
-- sound below the clock, since a crash of the backends alone (PostgreSQL's
-- restart_after_crash) keeps the postmaster, so the jump does not come again.
--
-- $1: BELLHOP_DURABLE_STAMPS, every stamp waits. Waiting is set explicitly:
-- a server or role default of synchronous_commit = off would otherwise make
-- both the durable stamps and those ahead of the clock asynchronous. Any
-- other setting (local, on, remote_write, remote_apply) flushes locally and
-- is kept, standbys included.
SELECT set_config('synchronous_commit',
    CASE WHEN NOT $1::boolean AND last_seq <= floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint
         THEN 'off'
         WHEN current_setting('synchronous_commit') = 'off' THEN 'on'
         ELSE current_setting('synchronous_commit') END, true)
FROM bellhop.relay_state;

-- name: SetWake
-- Non-transactional: writers see the flip at once.
SELECT setval($1::regclass, $2);

-- name: Snapshot
SELECT pg_current_snapshot()::text;

-- name: Settled
-- True once no transaction that was running at the snapshot still is: each
-- of them either committed (its rows are visible now) or saw the wake flag.
SELECT NOT EXISTS (
    SELECT 1 FROM pg_snapshot_xip($1::pg_snapshot) AS x
    WHERE pg_xact_status(x) = 'in progress'
);

-- name: Prune
-- Deletes, $3 at a time: deleted, live-only and expired rows once past the
-- replay window ($1), read and archived rows past the retention ($2) from
-- when they were read or archived, each only once the relay has logged it;
-- then log entries older than the replay window.
-- Records, per recipient, the highest seq of theirs whose entry it deleted:
-- a client of that recipient resuming from below it may have missed a
-- change and must refetch; other recipients' clients need not.
--
-- The DELETE repeats every condition on the row it takes. A row a
-- concurrent transaction holds (an upsert reviving it, an unread, any
-- update) is chosen here from its old version; the DELETE waits for the
-- lock and then rechecks only its own WHERE against the new version, never
-- doomed. The new version has a new xid, not yet logged, so it is not
-- visible in seen: the row stays, and is pushed.
WITH doomed AS (
    SELECT n.id FROM bellhop.notifications AS n, bellhop.relay_state AS s
    WHERE pg_visible_in_snapshot(n.xid, s.seen) AND (
           (n.deleted_at IS NOT NULL AND n.deleted_at < now() - $1::interval)
        OR (NOT 'database' = ANY (n.channels) AND n.updated_at < now() - $1::interval)
        OR (n.read_at IS NOT NULL AND n.read_at < now() - $2::interval)
        OR (n.archived_at IS NOT NULL AND n.archived_at < now() - $2::interval)
        OR (n.expires_at IS NOT NULL AND n.expires_at < now() - $1::interval))
    LIMIT $3
), gone AS (
    DELETE FROM bellhop.notifications AS t USING doomed, bellhop.relay_state AS s
    WHERE t.id = doomed.id
      AND pg_visible_in_snapshot(t.xid, s.seen) AND (
           (t.deleted_at IS NOT NULL AND t.deleted_at < now() - $1::interval)
        OR (NOT 'database' = ANY (t.channels) AND t.updated_at < now() - $1::interval)
        OR (t.read_at IS NOT NULL AND t.read_at < now() - $2::interval)
        OR (t.archived_at IS NOT NULL AND t.archived_at < now() - $2::interval)
        OR (t.expires_at IS NOT NULL AND t.expires_at < now() - $1::interval))
    RETURNING t.id, t.tenant_id, t.notifiable_type, t.notifiable_id
), unlogged AS (
    -- Only the entries of rows actually deleted.
    DELETE FROM bellhop.relay_log AS l USING gone AS g
    WHERE l.tenant_id = g.tenant_id AND l.notifiable_type = g.notifiable_type
      AND l.notifiable_id = g.notifiable_id AND l.id = g.id
    RETURNING l.seq, l.tenant_id, l.notifiable_type, l.notifiable_id
), aged AS (
    DELETE FROM bellhop.relay_log
    WHERE seq <= (SELECT max(seq) FROM (
        SELECT seq, logged_at FROM bellhop.relay_log ORDER BY seq LIMIT $3) AS oldest
        WHERE logged_at < now() - $1::interval)
      AND seq NOT IN (SELECT seq FROM unlogged)
    RETURNING seq, tenant_id, notifiable_type, notifiable_id
), horizon AS (
    -- One row per recipient (ON CONFLICT may touch a row only once), in key
    -- order, so that two prunes at once take the row locks in one order.
    INSERT INTO bellhop.relay_horizon AS h (tenant_id, notifiable_type, notifiable_id, seq)
    SELECT tenant_id, notifiable_type, notifiable_id, max(seq)
    FROM (SELECT * FROM unlogged UNION ALL SELECT * FROM aged) AS p
    GROUP BY tenant_id, notifiable_type, notifiable_id
    ORDER BY tenant_id, notifiable_type, notifiable_id
    ON CONFLICT (tenant_id, notifiable_type, notifiable_id)
    DO UPDATE SET seq = greatest(h.seq, excluded.seq), pruned_at = now()
)
SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM aged);

-- name: Forget
-- Folds up to $2 recipients' horizons that have not moved for a replay
-- window ($1) into the global floor, which bounds relay_horizon: a client
-- resuming from below the floor gets refetch whatever its recipient. Its
-- id is older than a horizon stamped over a replay window ago, so it has
-- been away (or quiet) that long. The DELETE repeats its condition: a
-- horizon a concurrent prune just raised stays.
WITH old AS (
    SELECT tenant_id, notifiable_type, notifiable_id FROM bellhop.relay_horizon
    WHERE pruned_at < now() - $1::interval
    ORDER BY pruned_at
    LIMIT $2
), forgotten AS (
    DELETE FROM bellhop.relay_horizon AS h USING old
    WHERE h.tenant_id = old.tenant_id AND h.notifiable_type = old.notifiable_type
      AND h.notifiable_id = old.notifiable_id
      AND h.pruned_at < now() - $1::interval
    RETURNING h.seq
), floor AS (
    UPDATE bellhop.relay_state
    SET pruned_seq = greatest(pruned_seq, (SELECT max(seq) FROM forgotten))
    WHERE EXISTS (SELECT 1 FROM forgotten)
)
SELECT count(*) FROM forgotten;

-- name: Escalation
-- A notification an escalation job posts about: only while it is still
-- unread, not archived, expired or deleted.
SELECT id::text, tenant_id, notifiable_type, notifiable_id, type, data, critical, read_at, created_at
FROM bellhop.notifications
WHERE id = $1 AND read_at IS NULL AND deleted_at IS NULL AND archived_at IS NULL
  AND (expires_at IS NULL OR expires_at > now()) AND 'database' = ANY (channels);

-- name: ExpireDue
-- Whether any row's expiry has come that Expire has not touched yet. The
-- sweep asks first: an UPDATE fires the statement-level wake trigger even
-- when it touches no row, and would NOTIFY a parked relay every sweep.
-- "The earliest due", not EXISTS, as in HasPending: with many rows expired
-- long ago, EXISTS planned a sequential scan expecting an early match and
-- read the whole table (42 ms at 400,000 rows); ordered by expires_at, the
-- expiry index's first entry answers (0.1 ms).
SELECT (SELECT expires_at FROM bellhop.notifications
        WHERE expires_at <= now() AND op <> 'expired' AND deleted_at IS NULL
        ORDER BY expires_at LIMIT 1) IS NOT NULL;

-- name: Expire
-- Touches up to $1 rows whose expiry has come and that were not pushed as
-- expired yet: the update trigger makes them "expired" and pending, and
-- the relay pushes that like any change. Lists and counts left them out
-- from the instant itself; this is for the tabs that show them. A row a
-- writer holds is skipped (its new version is checked by the next sweep),
-- and the UPDATE repeats its conditions on the row it takes. updated_at is
-- moved only so that the trigger fires (it sets updated_at itself).
UPDATE bellhop.notifications AS n SET updated_at = n.updated_at + interval '1 microsecond'
FROM (SELECT id FROM bellhop.notifications
      WHERE expires_at <= now() AND op <> 'expired' AND deleted_at IS NULL
      ORDER BY expires_at
      LIMIT $1
      FOR UPDATE SKIP LOCKED) AS due
WHERE n.id = due.id AND n.expires_at <= now() AND n.op <> 'expired' AND n.deleted_at IS NULL;
