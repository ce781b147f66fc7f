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

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bellhophq/bellhop/integration/pgtest"
	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
	"github.com/bellhophq/bellhop/worker"
)

// A relay assembled by hand on the application's own pool: the hub and API
// (relay.New with NoWorker), the worker that stamps committed rows and
// hands them to the relay, attached so that Start, Stop and /readyz include
// it. Stop leaves the shared pool open.
func Example_sharedPool() {
	ctx := context.Background()
	db, err := pgtest.Open(ctx) // a throwaway migrated schema
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	pool, err := pgxpool.New(ctx, db.URL) // the application's pool
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	const secret = "example-secret-example-secret-0123456789"
	r, err := relay.New(ctx, relay.Config{Pool: pool, Schema: db.Schema, JWTSecret: secret, NoWorker: true}, nil)
	if err != nil {
		log.Fatal(err)
	}
	w, err := worker.New(pool, worker.Config{Schema: db.Schema, Pusher: r, Registerer: r.Registry()})
	if err != nil {
		log.Fatal(err)
	}
	r.Attach(w)
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

	ob, err := outbox.New(outbox.Config{Schema: db.Schema})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := ob.Send(ctx, pool, outbox.User("42"), outbox.Message{Kind: "invoice.paid"}); err != nil {
		log.Fatal(err)
	}
	lines := bufio.NewScanner(res.Body)
	for lines.Scan() {
		if line := lines.Text(); strings.HasPrefix(line, "data: ") {
			fmt.Println(strings.Contains(line, `"type":"invoice.paid"`))
			break
		}
	}
	// Output: true
}
