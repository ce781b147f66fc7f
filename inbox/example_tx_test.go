package inbox_test

import (
	"context"
	"fmt"
	"log"

	"github.com/jackc/pgx/v5"

	"github.com/bellhophq/bellhop/inbox"
	"github.com/bellhophq/bellhop/integration/pgtest"
	"github.com/bellhophq/bellhop/outbox"
)

// WithTx marks read inside the application's own transaction: the read
// commits, and is pushed to the recipient's tabs, with the rest of it.
func ExampleInbox_WithTx() {
	ctx := context.Background()
	db, err := pgtest.Open(ctx) // a throwaway schema; in an app, the pool is yours and the schema "bellhop"
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	in, id := exampleInbox(ctx, db)

	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		// ... the business change: the user opened invoice 1001 ...
		_, err := in.WithTx(tx).MarkRead(ctx, outbox.User("42"), id)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	c, err := in.UnreadCount(ctx, outbox.User("42"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.Count, "unread")
	// Output: 0 unread
}

// A transaction that rolls back takes the read with it: the notification
// stays unread, and no tab hears of it.
func ExampleInbox_WithTx_rollback() {
	ctx := context.Background()
	db, err := pgtest.Open(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	in, id := exampleInbox(ctx, db)

	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := in.WithTx(tx).MarkRead(ctx, outbox.User("42"), id); err != nil {
		log.Fatal(err)
	}
	// ... the business change fails ...
	if err := tx.Rollback(ctx); err != nil {
		log.Fatal(err)
	}

	c, err := in.UnreadCount(ctx, outbox.User("42"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.Count, "unread")
	// Output: 1 unread
}

// exampleInbox returns an Inbox over db's pool, built once as an app would
// at startup, and the id of one unread notification for user 42.
func exampleInbox(ctx context.Context, db *pgtest.DB) (*inbox.Inbox, string) {
	in, err := inbox.New(db.Pool, inbox.Config{Schema: db.Schema})
	if err != nil {
		log.Fatal(err)
	}
	ob, err := outbox.New(outbox.Config{Schema: db.Schema})
	if err != nil {
		log.Fatal(err)
	}
	id, err := ob.Send(ctx, db.Pool, outbox.User("42"), outbox.Message{Kind: "invoice.paid", Data: map[string]string{"invoiceId": "1001"}})
	if err != nil {
		log.Fatal(err)
	}
	return in, id
}
