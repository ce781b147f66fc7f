package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"
)

// commitStream follows, by logical decoding, the commits of transactions
// that wrote notification rows (WakeLogical): PostgreSQL's walsender reads
// each commit from the WAL as soon as it is flushed and sends it here, so
// the relay learns of a commit without polling and without the writer
// paying for a NOTIFY. What it sends is only a wake-up: the stamp reads the
// table as always, and a commit the stream misses is found by the drain's
// polls and the sweep.
//
// The stream uses a temporary slot (gone when its connection is, so a dead
// relay holds no WAL back) and the pgoutput plugin on the publication
// <schema>_wake, which migration 00010 creates for inserts and updates of
// notifications (only the id column on PostgreSQL 15 and later).
type commitStream struct {
	config      *pgconn.Config
	slot        string
	publication string
	log         *slog.Logger
	// Commits is signalled (without blocking; signals fold) for every
	// decoded commit that wrote notification rows, and after every start,
	// when what committed while the stream was down must be looked for.
	Commits chan struct{}
	// OnUp and OnDown are called as the stream starts and ends.
	OnUp, OnDown func(ctx context.Context)

	up       atomic.Bool
	failures int
}

// statusInterval is how often the stream confirms what it has received:
// the slot then lets the server recycle the WAL before it.
const statusInterval = time.Second

func newCommitStream(pool *pgxpool.Pool, schema string, log *slog.Logger) *commitStream {
	cfg := pool.Config().ConnConfig.Config.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["replication"] = "database"
	// The pool's AfterConnect and the like are for SQL sessions.
	cfg.AfterConnect, cfg.ValidateConnect = nil, nil
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &commitStream{
		config: cfg,
		// Temporary slots are per connection, but their names are the
		// server's: each process needs its own. The schema is at most 48
		// bytes of [a-z0-9_] (sqlq.CheckSchema).
		slot:        schema + "_wake_" + hex.EncodeToString(b[:]),
		publication: schema + "_wake",
		log:         log,
		Commits:     make(chan struct{}, 1),
	}
}

// Up reports whether the stream is following commits.
func (s *commitStream) Up() bool { return s.up.Load() }

// Run follows commits until ctx ends, starting over after a failure (1 s,
// doubling to 30 s).
func (s *commitStream) Run(ctx context.Context) {
	for {
		err := s.session(ctx)
		if ctx.Err() != nil {
			return
		}
		s.failures++
		if s.failures == 1 || s.failures%20 == 0 {
			s.log.Warn("follow commits by logical decoding; polling meanwhile (BELLHOP_WAKE_MODE=logical)",
				"err", err, "fix", hint(err), "failures", s.failures)
		}
		wait := min(time.Second<<min(s.failures-1, 5), 30*time.Second)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// hint says what an operator can do about a failure to start the stream.
func hint(err error) string {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return "check that the server takes replication connections (max_wal_senders > 0)"
	}
	switch {
	case strings.Contains(pgErr.Message, "wal_level"):
		return "set wal_level = logical on the server (it takes a restart), or use BELLHOP_WAKE_MODE=adaptive"
	case pgErr.Code == "42501" || strings.Contains(pgErr.Message, "replication"):
		return "the relay's role needs the REPLICATION attribute (ALTER ROLE ... REPLICATION), or use BELLHOP_WAKE_MODE=adaptive"
	case pgErr.Code == "42704":
		return "the publication is missing: run `relay migrate`"
	}
	return "see the server's log"
}

func (s *commitStream) session(ctx context.Context) error {
	conn, err := pgconn.ConnectConfig(ctx, s.config)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// A temporary slot waits for the transactions running now to end
	// before it starts: one open for an hour keeps the relay polling (the
	// adaptive way) for that hour.
	if _, err := pglogrepl.CreateReplicationSlot(ctx, conn, s.slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
		Temporary: true, SnapshotAction: "NOEXPORT_SNAPSHOT", Mode: pglogrepl.LogicalReplication,
	}); err != nil {
		return fmt.Errorf("create slot: %w", err)
	}
	if err := pglogrepl.StartReplication(ctx, conn, s.slot, 0, pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication,
		PluginArgs: []string{"proto_version '1'",
			"publication_names '" + s.publication + "'"}, // the schema is [a-z0-9_]
	}); err != nil {
		return fmt.Errorf("start replication: %w", err)
	}
	s.up.Store(true)
	s.failures = 0
	if s.OnUp != nil {
		s.OnUp(ctx)
	}
	defer func() {
		s.up.Store(false)
		if s.OnDown != nil {
			s.OnDown(context.WithoutCancel(ctx))
		}
	}()
	s.signal()

	// Messages are read without a context (pgconn watches a cancellable
	// one for every call: a goroutine hand-off per message, four messages
	// per commit); closing the socket ends a read when ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = conn.Conn().Close() })
	defer stop()
	var received pglogrepl.LSN
	wrote := false
	next := time.Now().Add(statusInterval)
	for {
		// The position is confirmed at most every statusInterval while
		// messages come; when none do, the server asks for it (its
		// keepalive, every half wal_sender_timeout).
		if time.Now().After(next) {
			if err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: received}); err != nil {
				return fmt.Errorf("status update: %w", err)
			}
			next = time.Now().Add(statusInterval)
		}
		msg, err := conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		switch msg := msg.(type) {
		case *pgproto3.ErrorResponse:
			return pgconn.ErrorResponseToPgError(msg)
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 {
				continue
			}
			switch msg.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				k, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
				if err != nil {
					return err
				}
				received = max(received, k.ServerWALEnd)
				if k.ReplyRequested {
					next = time.Time{}
				}
			case pglogrepl.XLogDataByteID:
				x, err := pglogrepl.ParseXLogData(msg.Data[1:])
				if err != nil {
					return err
				}
				received = max(received, x.WALStart+pglogrepl.LSN(len(x.WALData)))
				if len(x.WALData) == 0 {
					continue
				}
				// pgoutput: Begin, then the changes, then Commit. Before
				// PostgreSQL 15 it sends a Begin and a Commit for every
				// transaction, changes or none.
				switch x.WALData[0] {
				case 'B':
					wrote = false
				case 'I', 'U':
					wrote = true
				case 'C':
					if wrote {
						s.signal()
					}
					wrote = false
				}
			}
		}
	}
}

func (s *commitStream) signal() {
	select {
	case s.Commits <- struct{}{}:
	default:
	}
}
