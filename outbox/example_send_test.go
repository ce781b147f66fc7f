package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/jackc/pgx/v5"

	"github.com/bellhophq/bellhop/integration/pgtest"
	"github.com/bellhophq/bellhop/outbox"
)

// InvoicePaid is an application's notification: the database payload is what
// the inbox lists, the SSE payload what the open tabs receive.
type InvoicePaid struct {
	InvoiceID string
	Amount    int
}

func (InvoicePaid) Type() string { return "invoice.paid" }

func (n InvoicePaid) ToDatabase() any {
	return map[string]any{"invoiceId": n.InvoiceID, "amount": n.Amount}
}

func (n InvoicePaid) ToSSE() any { return map[string]any{"invoiceId": n.InvoiceID} }

// Send writes the notification in the same transaction as the business
// change: it exists, and is pushed, only if the transaction commits.
func ExampleOutbox_Send() {
	ctx := context.Background()
	db, err := pgtest.Open(ctx) // a throwaway schema; in an app, the pool is yours and the schema "bellhop"
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	ob, err := outbox.New(outbox.Config{Schema: db.Schema})
	if err != nil {
		log.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		// ... the business change: mark invoice 1001 paid ...
		_, err := ob.Send(ctx, tx, outbox.User("42"), InvoicePaid{InvoiceID: "1001", Amount: 4200})
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	var kind, data string
	err = db.Pool.QueryRow(ctx, "SELECT type, data::text FROM "+db.Table("notifications")+" WHERE notifiable_id = '42'").Scan(&kind, &data)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(kind, data)
	// Output: invoice.paid {"amount": 4200, "invoiceId": "1001"}
}

// A rollback takes the notification with it: nothing is written, and no
// stream hears of it.
func ExampleOutbox_Send_rollback() {
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
	errDeclined := errors.New("card declined")
	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if _, err := ob.Send(ctx, tx, outbox.User("42"), InvoicePaid{InvoiceID: "1001", Amount: 4200}); err != nil {
			return err
		}
		return errDeclined // the business change fails: BeginFunc rolls back
	})
	fmt.Println(err)

	var n int
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+db.Table("notifications")).Scan(&n); err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, "notifications")
	// Output:
	// card declined
	// 0 notifications
}

// SendMany writes one notification for many recipients in one statement.
func ExampleOutbox_SendMany() {
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
	team := []outbox.Recipient{outbox.User("1"), outbox.User("2"), {Tenant: "acme", Type: "User", ID: "3"}}
	ids, err := ob.SendMany(ctx, db.Pool, team, outbox.Message{
		Kind: "deploy.finished",
		Data: map[string]string{"service": "billing"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(ids), "notifications")
	// Output: 3 notifications
}
