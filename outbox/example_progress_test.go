package outbox_test

import (
	"context"
	"fmt"
	"log"

	"github.com/bellhophq/bellhop/integration/pgtest"
	"github.com/bellhophq/bellhop/outbox"
)

// ExportProgress is a progress notification: its DatabaseKey makes every send
// update the recipient's one row for that export, and push again.
type ExportProgress struct {
	ExportID string
	Percent  int
}

func (ExportProgress) Type() string          { return "export.progress" }
func (p ExportProgress) DatabaseKey() string { return "export:" + p.ExportID }
func (p ExportProgress) ToDatabase() any {
	return map[string]any{"title": "Export " + p.ExportID, "progress": p.Percent}
}
func (p ExportProgress) ToSSE() any { return map[string]any{"progress": p.Percent} }

func Example_progress() {
	ctx := context.Background()
	db, err := pgtest.Open(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	ob, err := outbox.New(outbox.Config{Schema: db.Schema})
	if err != nil {
		log.Fatal(err)
	}
	for _, pct := range []int{0, 40, 100} {
		if _, err := ob.Send(ctx, db.Pool, outbox.User("42"), ExportProgress{ExportID: "7", Percent: pct}); err != nil {
			log.Fatal(err)
		}
	}

	var rows int
	var data string
	err = db.Pool.QueryRow(ctx, "SELECT count(*) OVER (), data::text FROM "+db.Table("notifications")).Scan(&rows, &data)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rows, "row:", data)
	// Output: 1 row: {"title": "Export 7", "progress": 100}
}
