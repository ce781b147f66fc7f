package outbox_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/bellhophq/bellhop/integration/pgtest"
	"github.com/bellhophq/bellhop/outbox"
)

// A notification with buttons and a link for the widget (the data
// convention of README.md, "What the browser widget shows") that leaves
// the inbox by itself: from Expires on it is neither listed nor counted,
// and open tabs get an expired event.
func Example_expiry() {
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
	_, err = ob.Send(ctx, db.Pool, outbox.User("42"), outbox.Message{
		Kind: "sale.flash",
		Data: map[string]any{
			"title":   "Flash sale: 30% off for an hour",
			"url":     "/sale",
			"actions": []map[string]string{{"id": "remind", "label": "Remind me"}},
		},
		Expires: time.Now().Add(time.Hour),
	})
	if err != nil {
		log.Fatal(err)
	}

	var left time.Duration
	err = db.Pool.QueryRow(ctx, "SELECT expires_at - now() FROM "+db.Table("notifications")).Scan(&left)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("expires in about", left.Round(time.Hour))
	// Output: expires in about 1h0m0s
}
