package integration

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
	"github.com/bellhophq/bellhop/worker"
)

// webhookSecret is a Standard Webhooks secret: whsec_ and 24 bytes in base64.
const webhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// delivery is one request the receiver got.
type delivery struct {
	ID    string
	Event string
	Body  worker.WebhookBody
}

// receiver is a webhook endpoint on a loopback server. It checks every
// request's signature twice (the Standard Webhooks library, and HMAC by
// hand), answers what respond says (200 by default), and keeps every
// delivery, duplicates included: a real receiver dedupes by webhook-id.
type receiver struct {
	t   *testing.T
	URL string

	mu         sync.Mutex
	deliveries []delivery
	bad        []string
	respond    func(d delivery, attempt int) int
	attempts   map[string]int
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{t: t, attempts: map[string]int{}}
	wh, err := standardwebhooks.NewWebhook(webhookSecret)
	require.NoError(t, err)
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(webhookSecret, "whsec_"))
	require.NoError(t, err)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		id := req.Header.Get("webhook-id")
		var d delivery
		d.ID = id
		bad := ""
		if err := wh.Verify(body, req.Header); err != nil {
			bad = "library: " + err.Error()
		}
		mac := hmac.New(sha256.New, key)
		fmt.Fprintf(mac, "%s.%s.%s", id, req.Header.Get("webhook-timestamp"), body)
		if want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)); req.Header.Get("webhook-signature") != want {
			bad += " by hand: signature " + req.Header.Get("webhook-signature") + " want " + want
		}
		if req.Header.Get("Content-Type") != "application/json" {
			bad += " content type " + req.Header.Get("Content-Type")
		}
		if err := json.Unmarshal(body, &d.Body); err != nil {
			bad += " body: " + err.Error()
		}
		d.Event = d.Body.Type
		rc.mu.Lock()
		if bad != "" {
			rc.bad = append(rc.bad, id+": "+bad)
		}
		rc.attempts[id]++
		attempt := rc.attempts[id]
		rc.deliveries = append(rc.deliveries, d)
		respond := rc.respond
		rc.mu.Unlock()
		status := http.StatusOK
		if respond != nil {
			status = respond(d, attempt)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	rc.URL = srv.URL
	return rc
}

// snapshot returns the deliveries so far and fails on a bad signature.
func (rc *receiver) snapshot() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	require.Empty(rc.t, rc.bad, "requests that fail verification")
	return append([]delivery(nil), rc.deliveries...)
}

// attemptsOf is how often webhook-id id arrived.
func (rc *receiver) attemptsOf(id string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.attempts[id]
}

// unique is the deliveries deduplicated by webhook-id, as a receiver
// would, by notification id and event: each must map to one webhook-id.
func (rc *receiver) unique(t *testing.T) map[string]delivery {
	t.Helper()
	byID := map[string]delivery{}
	idOf := map[string]string{} // notification id + event -> webhook-id
	for _, d := range rc.snapshot() {
		key := d.Body.Data.ID + " " + d.Event
		if prev, ok := idOf[key]; ok {
			require.Equal(t, prev, d.ID, "%s posted under two webhook-ids: a duplicate the receiver cannot catch", key)
		}
		idOf[key] = d.ID
		byID[d.ID] = d
	}
	return byID
}

func (b *testBundle) webhookRelay(t *testing.T, rc *receiver, mutate ...func(*worker.Config)) *testRelay {
	t.Helper()
	return b.startRelay(t, func(c *relay.Config) {
		c.Worker.WebhookURL = rc.URL
		c.Worker.WebhookSecret = webhookSecret
		c.Worker.WebhookTimeout = 5 * time.Second
		for _, m := range mutate {
			m(&c.Worker)
		}
	})
}

// A row to the webhook channel is posted once, signed, with its data; a
// 500 is retried under the same webhook-id and body; a rolled-back row and
// a row without the channel are never posted; a type the recipient muted
// for webhook is not posted unless critical; read events come when
// configured.
func TestWebhookDelivery(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	rc := newReceiver(t)
	rc.respond = func(d delivery, attempt int) int {
		if d.Body.Data.Type == "flaky" && attempt == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
	r := b.webhookRelay(t, rc, func(c *worker.Config) {
		c.WebhookEvents = []string{worker.EventCreated, worker.EventRead}
	})
	alice := outbox.User("alice")
	hook := []outbox.Channel{outbox.Database, outbox.Webhook}

	send := func(m outbox.Message) string {
		t.Helper()
		id, err := b.ob.Send(ctx, b.db.Pool, alice, m)
		require.NoError(t, err)
		return id
	}
	// Rolled back: never posted.
	tx, err := b.db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = b.ob.Send(ctx, tx, alice, outbox.Message{Kind: "rolled.back", Channels: hook})
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))

	status, out := putPreferences(t, r.URL, alice, "application/json", `{"types": {"muted": {"webhook": false}}}`)
	require.Equal(t, http.StatusOK, status, out)
	plain := send(outbox.Message{Kind: "inbox.only"})
	invoice := send(outbox.Message{Kind: "invoice.paid", Data: map[string]any{"amount": 42}, Channels: hook})
	flaky := send(outbox.Message{Kind: "flaky", Channels: hook})
	send(outbox.Message{Kind: "muted", Channels: hook})
	urgent := send(outbox.Message{Kind: "muted", Channels: hook, IsCritical: true})

	wantCreated := map[string]bool{invoice: true, flaky: true, urgent: true}
	require.Eventually(t, func() bool {
		got := map[string]bool{}
		for _, d := range rc.unique(t) {
			got[d.Body.Data.ID] = true
		}
		return len(got) == len(wantCreated)
	}, 15*time.Second, 20*time.Millisecond)
	// The retry of the flaky one has come (River's first backoff is about
	// a second).
	require.Eventually(t, func() bool {
		n := 0
		for _, d := range rc.snapshot() {
			if d.Body.Data.ID == flaky {
				n++
			}
		}
		return n == 2
	}, 15*time.Second, 20*time.Millisecond)

	res := api(t, http.MethodPost, r.URL+"/notifications/"+invoice+"/read", &alice, nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	res = api(t, http.MethodPost, r.URL+"/notifications/"+plain+"/read", &alice, nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	var read delivery
	require.Eventually(t, func() bool {
		for _, d := range rc.snapshot() {
			if d.Event == worker.EventRead {
				read = d
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "no notification.read")
	require.Equal(t, invoice, read.Body.Data.ID)
	require.NotNil(t, read.Body.Data.ReadAt)
	time.Sleep(500 * time.Millisecond) // room for anything that should not come

	all := rc.snapshot()
	byID := rc.unique(t)
	var flakyTries []delivery
	for _, d := range all {
		require.NotEqual(t, plain, d.Body.Data.ID, "a row without the webhook channel was posted")
		require.NotEqual(t, "rolled.back", d.Body.Data.Type, "a rolled-back row was posted")
		if d.Body.Data.ID == flaky {
			flakyTries = append(flakyTries, d)
		}
	}
	require.Len(t, all, 5, "invoice created and read, flaky twice, the critical one: %+v", all)
	require.Len(t, byID, 4)
	require.Equal(t, flakyTries[0], flakyTries[1], "a retry sends the same id and body")

	created, ok := byID["bellhop_"+invoice+"_created"]
	require.True(t, ok, "the webhook-id is bellhop_<id>_created: %v", byID)
	require.Equal(t, worker.EventCreated, created.Event)
	require.Equal(t, "invoice.paid", created.Body.Data.Type)
	require.Equal(t, "alice", created.Body.Data.NotifiableID)
	require.Equal(t, "User", created.Body.Data.NotifiableType)
	require.JSONEq(t, `{"amount": 42}`, string(created.Body.Data.Data))
	require.True(t, byID["bellhop_"+urgent+"_created"].Body.Data.Critical)
	_, ok = byID["bellhop_"+invoice+"_"+xidOf(t, b, invoice)+"_read"]
	require.True(t, ok, "a read is bellhop_<id>_<xid>_read: %v", byID)

	// One job per posted event, in River's table.
	var jobs int
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+b.db.Table("river_job")+" WHERE kind = 'bellhop_webhook'").Scan(&jobs))
	require.Equal(t, 5, jobs, "created x4 (one of them muted, skipped) and one read")
}

func xidOf(t *testing.T, b *testBundle, id string) string {
	t.Helper()
	var xid string
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), "SELECT xid::text FROM "+b.db.Table("notifications")+" WHERE id = $1", id).Scan(&xid))
	return xid
}

// A receiver that always fails: the job is tried WebhookMaxAttempts
// times, then River keeps it as discarded, which the README's query and
// the metric show.
func TestWebhookExhausted(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	rc := newReceiver(t)
	rc.respond = func(delivery, int) int { return http.StatusServiceUnavailable }
	r := b.webhookRelay(t, rc, func(c *worker.Config) { c.WebhookMaxAttempts = 2 })
	id, err := b.ob.Send(ctx, b.db.Pool, outbox.User("alice"), outbox.Message{Kind: "doomed", Channels: []outbox.Channel{outbox.Webhook}})
	require.NoError(t, err)

	// The README's query, with this test's schema.
	query := strings.ReplaceAll(`SELECT id, args->>'msg_id', attempt, errors[array_length(errors, 1)]->>'error'
FROM bellhop.river_job
WHERE kind IN ('bellhop_webhook', 'bellhop_escalate') AND state = 'discarded'
ORDER BY finalized_at DESC`, "bellhop.river_job", b.db.Table("river_job"))
	var jobID int64
	var msgID, lastErr string
	var attempt int
	require.Eventually(t, func() bool {
		return b.db.Pool.QueryRow(ctx, query).Scan(&jobID, &msgID, &attempt, &lastErr) == nil
	}, 20*time.Second, 50*time.Millisecond)
	require.Equal(t, "bellhop_"+id+"_created", msgID)
	require.Equal(t, 2, attempt)
	require.Contains(t, lastErr, "503")
	require.Len(t, rc.snapshot(), 2)

	res, err := http.Get(r.URL + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	metrics, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Contains(t, string(metrics), `bellhop_webhooks_total{event="notification.created",outcome="discarded"} 1`)
	require.Contains(t, string(metrics), `bellhop_webhooks_total{event="notification.created",outcome="failed"} 1`)
}

// Escalation: notification.unread comes for a row still unread after its
// delay, and not for one read or deleted meanwhile; a type's default
// delay (config) applies to rows without their own.
func TestWebhookEscalation(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	rc := newReceiver(t)
	r := b.webhookRelay(t, rc, func(c *worker.Config) {
		c.EscalateAfter = map[string]time.Duration{"defaulted": 1500 * time.Millisecond}
	})
	alice := outbox.User("alice")
	send := func(m outbox.Message) string {
		t.Helper()
		id, err := b.ob.Send(ctx, b.db.Pool, alice, m)
		require.NoError(t, err)
		return id
	}
	unread := send(outbox.Message{Kind: "own", Escalate: 1500 * time.Millisecond})
	read := send(outbox.Message{Kind: "own", Escalate: 1500 * time.Millisecond})
	deleted := send(outbox.Message{Kind: "own", Escalate: 1500 * time.Millisecond})
	defaulted := send(outbox.Message{Kind: "defaulted"})
	send(outbox.Message{Kind: "never"})
	res := api(t, http.MethodPost, r.URL+"/notifications/"+read+"/read", &alice, nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	res = api(t, http.MethodDelete, r.URL+"/notifications/"+deleted, &alice, nil)
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	start := time.Now()

	require.Eventually(t, func() bool { return len(rc.unique(t)) == 2 }, 15*time.Second, 20*time.Millisecond)
	time.Sleep(time.Second)
	got := rc.unique(t)
	require.Len(t, got, 2, "only the unread ones: %+v", got)
	for _, id := range []string{unread, defaulted} {
		d, ok := got["bellhop_"+id+"_unread"]
		require.True(t, ok, "%s escalated: %+v", id, got)
		require.Equal(t, worker.EventUnread, d.Event)
		require.Nil(t, d.Body.Data.ReadAt)
	}
	require.Greater(t, time.Since(start), time.Second, "not before the delay")
	// One job per row with an escalation that the relay saw unread and
	// not deleted (a row read or deleted before its first stamp has none),
	// none for the others.
	var escalated []string
	rows, err := b.db.Pool.Query(ctx, "SELECT args->>'id' FROM "+b.db.Table("river_job")+" WHERE kind = 'bellhop_escalate'")
	require.NoError(t, err)
	escalated, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Subset(t, escalated, []string{unread, defaulted})
	require.Subset(t, []string{unread, read, deleted, defaulted}, escalated)
	require.Len(t, escalated, len(slices.Compact(slices.Sorted(slices.Values(escalated)))), "no row twice")
}

// A row created and changed again before the relay logs it (here: in one
// transaction) is logged once, with its latest op, and still posted as
// created, once; a row created and deleted before that is not posted.
func TestWebhookCreatedSurvivesCoalescing(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	rc := newReceiver(t)
	b.webhookRelay(t, rc, func(c *worker.Config) {
		c.WebhookEvents = []string{worker.EventCreated, worker.EventUpdated, worker.EventRead}
	})
	hook := []outbox.Channel{outbox.Database, outbox.Webhook}
	tx, err := b.db.Pool.Begin(ctx)
	require.NoError(t, err)
	changed, err := b.ob.Send(ctx, tx, alice, outbox.Message{Kind: "export", Key: "export-1", Data: map[string]int{"progress": 10}, Channels: hook})
	require.NoError(t, err)
	_, err = b.ob.Send(ctx, tx, alice, outbox.Message{Kind: "export", Key: "export-1", Data: map[string]int{"progress": 90}, Channels: hook})
	require.NoError(t, err)
	withdrawn, err := b.ob.Send(ctx, tx, alice, outbox.Message{Kind: "oops", Channels: hook})
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "UPDATE "+b.db.Table("notifications")+" SET deleted_at = now() WHERE id = $1", withdrawn)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	var op string
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT op FROM "+b.db.Table("notifications")+" WHERE id = $1", changed).Scan(&op))
	require.Equal(t, "updated", op, "the row's only version says updated")

	require.Eventually(t, func() bool { return len(rc.snapshot()) >= 1 }, 10*time.Second, 20*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	got := rc.unique(t)
	require.Len(t, got, 1, "%+v", got)
	d, ok := got["bellhop_"+changed+"_created"]
	require.True(t, ok, "%+v", got)
	require.Equal(t, worker.EventCreated, d.Event)
	require.JSONEq(t, `{"progress": 90}`, string(d.Body.Data.Data))

	// A later update of it is an update.
	_, err = b.ob.Send(ctx, b.db.Pool, alice, outbox.Message{Kind: "export", Key: "export-1", Data: map[string]int{"progress": 100}, Channels: hook})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(rc.unique(t)) == 2 }, 10*time.Second, 20*time.Millisecond)
	d, ok = rc.unique(t)["bellhop_"+changed+"_"+xidOf(t, b, changed)+"_updated"]
	require.True(t, ok)
	require.Equal(t, worker.EventUpdated, d.Event)
}

// Exactly once across a crash: the relay is killed (SIGKILL) while a
// webhook is in flight, more rows are written while it is down, and it
// starts again. Every row is posted, the interrupted one again under the
// same webhook-id (River rescues the job after BELLHOP_RESCUE_AFTER), no
// row under two ids, and River holds one job per row: the restarted relay
// did not enqueue any row again.
func TestWebhookExactlyOnceAcrossSIGKILL(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	rc := newReceiver(t)
	hit := make(chan string, 1)
	release := make(chan struct{})
	var once sync.Once
	rc.respond = func(d delivery, attempt int) int {
		first := false
		once.Do(func() { first = true })
		if first {
			hit <- d.ID
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
		return http.StatusOK
	}
	p := b.startProcess(t,
		"BELLHOP_WEBHOOK_URL="+rc.URL,
		"BELLHOP_WEBHOOK_SECRET="+webhookSecret,
		"BELLHOP_WEBHOOK_TIMEOUT=5s",
		"BELLHOP_RESCUE_AFTER=6s",
		"BELLHOP_ESCALATE_AFTER=other:1h,escalated:2h",
	)
	write := func(n int) []string {
		ids := make([]string, 0, n)
		for i := range n {
			id, err := b.ob.Send(ctx, b.db.Pool, outbox.Recipient{Type: "User", ID: fmt.Sprint(i % 3)},
				outbox.Message{Kind: "order.shipped", Data: map[string]int{"n": i}, Channels: []outbox.Channel{outbox.Webhook, outbox.Database}})
			require.NoError(t, err)
			ids = append(ids, id)
		}
		return ids
	}
	ids := write(20)
	var inFlight string
	select {
	case inFlight = <-hit:
	case <-time.After(15 * time.Second):
		t.Fatal("no webhook arrived")
	}
	p.kill(t)
	close(release)
	ids = append(ids, write(20)...)
	p.start(t)

	require.Eventually(t, func() bool {
		got := map[string]bool{}
		for _, d := range rc.snapshot() {
			got[d.Body.Data.ID] = true
		}
		for _, id := range ids {
			if !got[id] {
				return false
			}
		}
		return rc.attemptsOf(inFlight) >= 2
	}, 90*time.Second, 100*time.Millisecond, "every row posted, the interrupted one again")

	unique := rc.unique(t) // fails on a row posted under two ids
	require.Len(t, unique, len(ids))
	for _, id := range ids {
		_, ok := unique["bellhop_"+id+"_created"]
		require.True(t, ok, "%s posted under its id", id)
	}
	var jobs int
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+b.db.Table("river_job")+" WHERE kind = 'bellhop_webhook'").Scan(&jobs))
	require.Equal(t, len(ids), jobs, "one job per row, none enqueued twice")
}
