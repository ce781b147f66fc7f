package relay_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/bellhophq/bellhop/integration/pgtest"
	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
)

// A relay embedded in a Go program: its Handler serves the stream and the
// inbox API; a committed Send reaches the open stream.
func Example() {
	ctx := context.Background()
	db, err := pgtest.Open(ctx) // a throwaway migrated schema
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	const secret = "example-secret-example-secret-0123456789"
	r, err := relay.New(ctx, relay.Config{DatabaseURL: db.URL, Schema: db.Schema, JWTSecret: secret}, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	defer r.Stop(ctx)

	token, _ := relay.Mint(secret, outbox.User("42"), time.Hour)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/notifications/stream", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer res.Body.Close()

	ob, _ := outbox.New(outbox.Config{Schema: db.Schema})
	if _, err := ob.Send(ctx, db.Pool, outbox.User("42"), outbox.Message{Kind: "invoice.paid"}); err != nil {
		log.Fatal(err)
	}

	lines := bufio.NewScanner(res.Body)
	for lines.Scan() {
		if line := lines.Text(); strings.HasPrefix(line, "event: ") {
			fmt.Println(line)
			break
		}
	}
	// Output: event: notification
}
