package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver; lib/pq works too

	"github.com/bellhophq/bellhop/integration/pgtest"
	"github.com/bellhophq/bellhop/outbox"
)

// SendSQL is Send for database/sql: the notification commits with the
// application's *sql.Tx. sqlx, bun and GORM hand out the same transaction.
func ExampleOutbox_SendSQL() {
	ctx := context.Background()
	db, err := pgtest.Open(ctx) // a throwaway schema; in an app, the database is yours and the schema "bellhop"
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	sqlDB, err := sql.Open("pgx", db.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer sqlDB.Close()

	ob, err := outbox.New(outbox.Config{Schema: db.Schema})
	if err != nil {
		log.Fatal(err)
	}
	tx, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback() // a no-op once committed
	// ... the business change: mark invoice 1001 paid ...
	if _, err := ob.SendSQL(ctx, tx, outbox.User("42"), InvoicePaid{InvoiceID: "1001", Amount: 4200}); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		log.Fatal(err)
	}

	var kind, data string
	err = sqlDB.QueryRowContext(ctx, "SELECT type, data::text FROM "+db.Table("notifications")+" WHERE notifiable_id = '42'").Scan(&kind, &data)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(kind, data)
	// Output: invoice.paid {"amount": 4200, "invoiceId": "1001"}
}

// A transaction that rolls back takes its notifications with it: nothing
// is written, and no stream hears of them.
func ExampleOutbox_SendSQL_rollback() {
	ctx := context.Background()
	db, err := pgtest.Open(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	sqlDB, err := sql.Open("pgx", db.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer sqlDB.Close()

	ob, err := outbox.New(outbox.Config{Schema: db.Schema})
	if err != nil {
		log.Fatal(err)
	}
	tx, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	team := []outbox.Recipient{outbox.User("1"), outbox.User("2")}
	if _, err := ob.SendManySQL(ctx, tx, team, InvoicePaid{InvoiceID: "1001"}); err != nil {
		log.Fatal(err)
	}
	// ... the business change fails ...
	if err := tx.Rollback(); err != nil {
		log.Fatal(err)
	}

	var n int
	if err := sqlDB.QueryRowContext(ctx, "SELECT count(*) FROM "+db.Table("notifications")).Scan(&n); err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, "notifications")
	// Output: 0 notifications
}
