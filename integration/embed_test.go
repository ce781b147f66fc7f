package integration

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/relay"
	"github.com/bellhophq/bellhop/worker"
)

// An application embedding the relay shares its pool: the relay runs on
// Config.Pool, assembled by hand with its worker, pushes what commits, and
// Stop leaves the application's pool open; a relay that opened its own
// pool on DatabaseURL closes it.
func TestRelayOnSharedPool(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	pool, err := pgxpool.New(ctx, b.db.URL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	cfg := b.relayConfig()
	cfg.DatabaseURL, cfg.Pool, cfg.NoWorker = "", pool, true
	r, err := relay.New(ctx, cfg, nil)
	require.NoError(t, err)
	require.ErrorContains(t, r.Ready(ctx), "no worker attached")
	w, err := worker.New(pool, worker.Config{Schema: b.db.Schema, Pusher: r, Registerer: r.Registry()})
	require.NoError(t, err)
	r.Attach(w)
	require.NoError(t, r.Start(ctx))
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)
	checkRelay(t, srv.URL)
	waitReady(t, srv.URL)

	s := openStream(t, srv.URL, alice, -1)
	id := b.send(t, alice, "shared.pool")
	require.Equal(t, id, s.next(t, 10*time.Second).Data.ID)
	res, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)

	require.NoError(t, r.Stop(context.Background()))
	require.NoError(t, pool.Ping(ctx), "Stop closed the application's pool")

	own, err := relay.New(ctx, b.relayConfig(), nil)
	require.NoError(t, err)
	require.NoError(t, own.Start(ctx))
	require.NoError(t, own.Stop(context.Background()))
	require.Error(t, own.Pool().Ping(ctx), "Stop left the relay's own pool open")
}
