// Package loadgen is the write side of the fault drills (integration) and
// the soak run (cmd/soak): writer transactions that commit, roll back, or
// roll a savepoint back and commit the rest, each outcome recorded in a
// Ledger that deliveries are checked against; and the open-loop schedule
// the benchmarks (cmd/bench, cmd/peerbench) write at a given rate with.
package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Commit is a row a COMMIT acknowledged: its recipient, and when.
type Commit struct {
	To string
	At time.Time
}

// Counts are the ledger's transactions and rows by outcome.
type Counts struct {
	CommittedTx, Committed, RolledBackTx, Savepoints, FailedTx, UncertainTx int
}

// Ledger is every row the writers wrote, by outcome. Lock it to read.
type Ledger struct {
	sync.Mutex
	Committed  map[string]Commit // id -> acknowledged by COMMIT
	RolledBack map[string]bool
	Failed     map[string]bool   // the transaction failed before COMMIT
	Uncertain  map[string]string // COMMIT failed: committed or not, the table says
	Counts     Counts
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{
		Committed: map[string]Commit{}, RolledBack: map[string]bool{},
		Failed: map[string]bool{}, Uncertain: map[string]string{},
	}
}

// Snapshot returns the counts so far.
func (l *Ledger) Snapshot() Counts {
	l.Lock()
	defer l.Unlock()
	return l.Counts
}

// Writer writes notifications into Table for the recipients Pick returns.
// Rows that must commit have type Kind+".commit", rows that must not
// Kind+".rollback".
type Writer struct {
	Pool    *pgxpool.Pool
	Table   string // sanitized, schema-qualified
	Kind    string
	MaxRows int // rows per transaction, 1 to MaxRows
	Pick    func() string
	Ledger  *Ledger
}

// Transaction runs writer w's n-th transaction: 70% commit, 15% roll back
// (held open a moment while the relay looks), 15% insert one more row under
// a savepoint, roll the savepoint back and commit the rest. It records the
// outcome and reports false when the transaction failed.
func (wr *Writer) Transaction(w, n int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l := wr.Ledger
	kind := "commit"
	switch r := rand.IntN(100); {
	case r < 15:
		kind = "rollback"
	case r < 30:
		kind = "savepoint"
	}
	var keep, drop []string // ids that commit with the transaction, ids that never do
	var keepTo []string
	insert := func(tx pgx.Tx, typ string, i int) (string, string, error) {
		to := wr.Pick()
		data := fmt.Sprintf(`{"w":%d,"n":%d,"i":%d,"outcome":%q}`, w, n, i, typ)
		var id string
		err := tx.QueryRow(ctx, "INSERT INTO "+wr.Table+" (notifiable_id, type, data, sse) VALUES ($1, $2, $3, $3) RETURNING id::text",
			to, typ, data).Scan(&id)
		return id, to, err
	}
	tx, err := wr.Pool.Begin(ctx)
	if err != nil {
		l.Lock()
		l.Counts.FailedTx++
		l.Unlock()
		return false
	}
	fail := func() bool {
		_ = tx.Rollback(context.Background())
		l.Lock()
		defer l.Unlock()
		for _, id := range append(keep, drop...) {
			l.Failed[id] = true
		}
		l.Counts.FailedTx++
		return false
	}
	rows := 1 + rand.IntN(wr.MaxRows)
	for i := range rows {
		typ := wr.Kind + ".commit"
		if kind == "rollback" {
			typ = wr.Kind + ".rollback"
		}
		id, to, err := insert(tx, typ, i)
		if err != nil {
			return fail()
		}
		if kind == "rollback" {
			drop = append(drop, id)
		} else {
			keep, keepTo = append(keep, id), append(keepTo, to)
		}
	}
	switch kind {
	case "rollback":
		time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond) // open while the relay looks
		if err := tx.Rollback(ctx); err != nil {
			return fail()
		}
		l.Lock()
		for _, id := range drop {
			l.RolledBack[id] = true
		}
		l.Counts.RolledBackTx++
		l.Unlock()
		return true
	case "savepoint":
		if _, err := tx.Exec(ctx, "SAVEPOINT load"); err != nil {
			return fail()
		}
		id, _, err := insert(tx, wr.Kind+".rollback", rows)
		if err != nil {
			return fail()
		}
		drop = append(drop, id)
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT load"); err != nil {
			return fail()
		}
	}
	err = tx.Commit(ctx)
	now := time.Now()
	l.Lock()
	defer l.Unlock()
	if err != nil {
		// The COMMIT may have landed before the connection broke: the table
		// decides. The savepoint's row never commits either way.
		for i, id := range keep {
			l.Uncertain[id] = keepTo[i]
		}
		for _, id := range drop {
			l.Failed[id] = true
		}
		l.Counts.UncertainTx++
		return false
	}
	for i, id := range keep {
		l.Committed[id] = Commit{To: keepTo[i], At: now}
	}
	for _, id := range drop {
		l.RolledBack[id] = true
	}
	l.Counts.CommittedTx++
	l.Counts.Committed += len(keep)
	if kind == "savepoint" {
		l.Counts.Savepoints++
	}
	return true
}
