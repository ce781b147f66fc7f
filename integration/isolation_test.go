package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
)

// TestIsolationRandomized drives many recipients whose ids collide across
// tenants and notifiable types with random writes (Send, SendMany, progress
// upserts, rollbacks) and random inbox calls (list, count, read, unread,
// read-all, delete, also on other recipients' ids), and checks that nothing
// of one recipient ever reaches another: not a stream event, not a list
// item, not a count, not a change. At the end every stream must hold
// exactly its recipient's events, in order, without duplicates.
//
// ISOLATION_SEED replays a run's random choices (the seed is logged);
// ISOLATION_DURATION changes how long the operations run.
func TestIsolationRandomized(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	seed := time.Now().UnixNano()
	if s := os.Getenv("ISOLATION_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseInt(s, 10, 64)
		require.NoError(t, err)
	}
	t.Logf("seed %d (rerun with ISOLATION_SEED=%d)", seed, seed)
	duration := 3 * time.Second
	if s := os.Getenv("ISOLATION_DURATION"); s != "" {
		var err error
		duration, err = time.ParseDuration(s)
		require.NoError(t, err)
	}

	r := b.startRelay(t)

	// 3 tenants x 2 types x 3 ids: every id exists 6 times.
	const workers = 3
	var all []outbox.Recipient
	parts := make([][]outbox.Recipient, workers)
	for ti, tenant := range []string{"", "a", "b"} {
		for yi, typ := range []string{"User", "Team"} {
			for ii, id := range []string{"1", "2", "3"} {
				to := outbox.Recipient{Tenant: tenant, Type: typ, ID: id}
				all = append(all, to)
				// Each worker owns a mix: same id in other tenants and
				// types, same tenant with other ids.
				w := (ti + yi + ii) % workers
				parts[w] = append(parts[w], to)
			}
		}
	}

	tabs := map[outbox.Recipient][]*tab{}
	for _, to := range all {
		tabs[to] = append(tabs[to], newTab(openStream(t, r.URL, to, -1)))
	}

	w := &world{owner: map[string]outbox.Recipient{}, rolledBack: map[string]bool{}}
	client := &http.Client{Transport: checked(&http.Transport{MaxIdleConnsPerHost: 16}), Timeout: 30 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	errs := make(chan error, workers)
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wk := &isoWorker{
				b: b, base: r.URL, client: client, world: w, mine: parts[i],
				rng:   rand.New(rand.NewPCG(uint64(seed), uint64(i))),
				model: map[string]*modelRow{}, keyed: map[string]string{},
			}
			errs <- wk.run(ctx, deadline)
		}()
	}
	// Halfway, second tabs for some recipients, resuming from 0: they replay
	// the recipient's whole history, then go live.
	time.Sleep(duration / 2)
	for i, to := range all {
		if i%4 == 0 {
			tabs[to] = append(tabs[to], newTab(openStream(t, r.URL, to, 0)))
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "seed %d", seed)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("%d notifications written, %d rolled back, %d ops", len(w.owner), len(w.rolledBack), w.ops)

	// Every change stamped, then the database's truth.
	require.Eventually(t, func() bool {
		var n int
		err := b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+b.db.Table("relay_pending")).Scan(&n)
		return err == nil && n == 0
	}, 15*time.Second, 20*time.Millisecond)
	type dbRow struct {
		id, op string
		to     outbox.Recipient
		pushed bool
	}
	// A row's event is its latest log entry, the one with its current xid.
	rows, err := b.db.Pool.Query(ctx, "SELECT l.seq, n.id::text, n.op, n.tenant_id, n.notifiable_type, n.notifiable_id, "+
		"'sse' = ANY (n.channels) OR n.op NOT IN ('created', 'updated') FROM "+b.db.Table("notifications")+" AS n JOIN "+
		b.db.Table("relay_log")+" AS l ON l.id = n.id AND l.xid = n.xid")
	require.NoError(t, err)
	bySeq := map[int64]dbRow{}
	want := map[outbox.Recipient][]int64{}
	var seq int64
	var row dbRow
	_, err = pgx.ForEachRow(rows, []any{&seq, &row.id, &row.op, &row.to.Tenant, &row.to.Type, &row.to.ID, &row.pushed}, func() error {
		bySeq[seq] = row
		if row.pushed {
			want[row.to] = append(want[row.to], seq)
		}
		if owner, ok := w.owner[row.id]; ok {
			require.Equal(t, owner, row.to, "row %s moved to another recipient", row.id)
		} else {
			require.Contains(t, []string{"read_all", "seen"}, row.op, "only read_all and seen markers are rows the test did not write: %+v", row)
		}
		return nil
	})
	require.NoError(t, err)
	for id := range w.rolledBack {
		for _, r := range bySeq {
			require.NotEqual(t, id, r.id, "a rolled-back notification is in the table")
		}
	}

	for _, to := range all {
		for ti, tb := range tabs[to] {
			// Everything the recipient has now must reach each of its tabs.
			var missing []int64
			require.Eventually(t, func() bool {
				got := tb.seqs()
				missing = missing[:0]
				for _, s := range want[to] {
					if !got[s] {
						missing = append(missing, s)
					}
				}
				return len(missing) == 0
			}, 15*time.Second, 20*time.Millisecond, "%v tab %d never received %v (seed %d); it has %s", to, ti, &missing, seed, tb)

			events, closed := tb.snapshot()
			require.False(t, closed, "%v tab %d was closed by the relay", to, ti)
			prev := int64(-1)
			for _, ev := range events {
				where := fmt.Sprintf("%v tab %d event %d %+v (seed %d)", to, ti, ev.ID, ev.Data, seed)
				require.Equal(t, "notification", ev.Name, where)
				require.Equal(t, ev.ID, ev.Data.Seq, where)
				require.Greater(t, ev.ID, prev, "ids strictly increase, no duplicates: "+where)
				prev = ev.ID
				require.Contains(t, []string{"created", "updated", "read", "unread", "deleted", "read_all",
					"seen", "archived", "unarchived"}, ev.Data.Op, where)
				if cur, ok := bySeq[ev.ID]; ok {
					// The row still has this seq: it is the recipient's, and pushed.
					require.Equal(t, to, cur.to, "another recipient's row: "+where)
					require.True(t, cur.pushed, "a row that is not pushed was pushed: "+where)
				} else {
					require.NotContains(t, []string{"read_all", "seen"}, ev.Data.Op, "markers never change seq: "+where)
				}
				if ev.Data.ID != "" {
					require.False(t, w.rolledBack[ev.Data.ID], "a rolled-back notification was pushed: "+where)
					owner, ok := w.owner[ev.Data.ID]
					require.True(t, ok, "an id nobody wrote: "+where)
					require.Equal(t, to, owner, "another recipient's notification: "+where)
				} else {
					require.Contains(t, []string{"read_all", "seen"}, ev.Data.Op, where)
				}
				if len(ev.Data.SSE) > 0 && string(ev.Data.SSE) != "null" && ev.Data.Op != "seen" {
					var p payload
					require.NoError(t, json.Unmarshal(ev.Data.SSE, &p), where)
					require.Contains(t, p.To, rkey(to), "another recipient's payload: "+where)
				}
			}
		}
	}
}

// tab drains one stream into a list, so a slow check never backs it up.
type tab struct {
	mu     sync.Mutex
	events []event
	closed bool
}

func newTab(s *stream) *tab {
	tb := &tab{}
	go func() {
		for ev := range s.Events {
			tb.mu.Lock()
			tb.events = append(tb.events, ev)
			tb.mu.Unlock()
		}
		tb.mu.Lock()
		tb.closed = true
		tb.mu.Unlock()
	}()
	return tb
}

// String summarizes the tab for failure messages.
func (tb *tab) String() string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%d events (closed: %v):", len(tb.events), tb.closed)
	for i, ev := range tb.events {
		if i == 12 {
			b.WriteString(" ...")
			break
		}
		fmt.Fprintf(&b, " %d/%s", ev.ID, ev.Data.Op)
	}
	return b.String()
}

func (tb *tab) seqs() map[int64]bool {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	m := make(map[int64]bool, len(tb.events))
	for _, ev := range tb.events {
		m[ev.ID] = true
	}
	return m
}

// snapshot returns the events so far; closed is only meaningful while the
// test still holds the stream open.
func (tb *tab) snapshot() ([]event, bool) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return slices.Clone(tb.events), tb.closed
}

// payload is what every notification's data and sse carry: the recipients
// it was written for.
type payload struct {
	To []string `json:"to"`
	N  int      `json:"n"`
}

func rkey(to outbox.Recipient) string { return to.Tenant + "|" + to.Type + "|" + to.ID }

// world is what the workers share: who owns each id.
type world struct {
	mu         sync.Mutex
	owner      map[string]outbox.Recipient
	rolledBack map[string]bool
	ops        int
}

func (w *world) own(id string, to outbox.Recipient) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.owner[id] = to
}

// foreignIDs returns some ids of recipients outside mine.
func (w *world) foreignID(rng *rand.Rand, mine []outbox.Recipient) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	// Map order is random but not seeded; pick by sorting a sample.
	var ids []string
	for id, to := range w.owner {
		if !slices.Contains(mine, to) {
			ids = append(ids, id)
			if len(ids) >= 64 {
				break
			}
		}
	}
	if len(ids) == 0 {
		return "", false
	}
	slices.Sort(ids)
	return ids[rng.IntN(len(ids))], true
}

// modelRow is what a worker knows of a row of its own recipients.
type modelRow struct {
	to      outbox.Recipient
	db      bool // in the database channel: listed, counted, readable
	deleted bool
}

// isoWorker owns some recipients: only it writes their rows, so it can
// require that an operation changed nothing of anyone else's.
type isoWorker struct {
	b      *testBundle
	base   string
	client *http.Client
	world  *world
	mine   []outbox.Recipient
	rng    *rand.Rand
	model  map[string]*modelRow
	ids    []string          // model's keys, in creation order
	keyed  map[string]string // rkey|key -> id
	n      int
}

func (wk *isoWorker) run(ctx context.Context, deadline time.Time) error {
	for time.Now().Before(deadline) {
		var err error
		switch p := wk.rng.IntN(100); {
		case p < 22:
			err = wk.send(ctx)
		case p < 30:
			err = wk.sendMany(ctx)
		case p < 38:
			err = wk.progress(ctx)
		case p < 41:
			err = wk.rollback(ctx)
		case p < 53:
			err = wk.list(ctx)
		case p < 61:
			err = wk.count(ctx)
		case p < 79:
			err = wk.change(ctx)
		case p < 95:
			err = wk.foreign(ctx)
		case p < 98:
			err = wk.readAll(ctx)
		default:
			err = wk.seen(ctx)
		}
		if err != nil {
			return err
		}
		wk.world.mu.Lock()
		wk.world.ops++
		wk.world.mu.Unlock()
	}
	return nil
}

func (wk *isoWorker) pick() outbox.Recipient { return wk.mine[wk.rng.IntN(len(wk.mine))] }

func (wk *isoWorker) channels() []outbox.Channel {
	switch p := wk.rng.IntN(10); {
	case p < 7:
		return []outbox.Channel{outbox.Database, outbox.SSE}
	case p < 9:
		return []outbox.Channel{outbox.Database}
	default:
		return []outbox.Channel{outbox.SSE}
	}
}

func (wk *isoWorker) message(kind string, to []outbox.Recipient, via []outbox.Channel, key string) outbox.Message {
	wk.n++
	var keys []string
	for _, r := range to {
		keys = append(keys, rkey(r))
	}
	p := payload{To: keys, N: wk.n}
	return outbox.Message{Kind: kind, Data: p, SSE: p, Channels: via, Key: key}
}

func (wk *isoWorker) record(id string, to outbox.Recipient, via []outbox.Channel) {
	m, ok := wk.model[id]
	if !ok {
		m = &modelRow{to: to}
		wk.model[id] = m
		wk.ids = append(wk.ids, id)
	}
	m.db = slices.Contains(via, outbox.Database)
	m.deleted = false
	wk.world.own(id, to)
}

func (wk *isoWorker) send(ctx context.Context) error {
	to, via := wk.pick(), wk.channels()
	id, err := wk.b.ob.Send(ctx, wk.b.db.Pool, to, wk.message("iso.send", []outbox.Recipient{to}, via, ""))
	if err != nil {
		return err
	}
	wk.record(id, to, via)
	return nil
}

func (wk *isoWorker) subset() []outbox.Recipient {
	perm := wk.rng.Perm(len(wk.mine))
	var to []outbox.Recipient
	for _, i := range perm[:2+wk.rng.IntN(len(wk.mine)-1)] {
		to = append(to, wk.mine[i])
	}
	if wk.rng.IntN(4) == 0 {
		to = append(to, to[0]) // a repeated recipient gets one row
	}
	return to
}

func (wk *isoWorker) sendMany(ctx context.Context) error {
	to, via := wk.subset(), wk.channels()
	ids, err := wk.b.ob.SendMany(ctx, wk.b.db.Pool, to, wk.message("iso.many", to, via, ""))
	if err != nil {
		return err
	}
	seen := map[string]outbox.Recipient{}
	for i, id := range ids {
		if prev, ok := seen[id]; ok && prev != to[i] {
			return fmt.Errorf("SendMany gave %s to both %v and %v", id, prev, to[i])
		}
		seen[id] = to[i]
		wk.record(id, to[i], via)
	}
	return nil
}

// progress upserts a keyed notification, for one recipient or several.
func (wk *isoWorker) progress(ctx context.Context) error {
	key := "progress:" + strconv.Itoa(wk.rng.IntN(3))
	via := []outbox.Channel{outbox.Database, outbox.SSE}
	if wk.rng.IntN(5) == 0 {
		via = []outbox.Channel{outbox.Database}
	}
	to := []outbox.Recipient{wk.pick()}
	if wk.rng.IntN(3) == 0 {
		to = wk.subset()
	}
	ids, err := wk.b.ob.SendMany(ctx, wk.b.db.Pool, to, wk.message("iso.progress", to, via, key))
	if err != nil {
		return err
	}
	for i, id := range ids {
		k := rkey(to[i]) + "|" + key
		if prev, ok := wk.keyed[k]; ok && prev != id {
			return fmt.Errorf("progress %s for %v: new row %s, want the same row %s", key, to[i], id, prev)
		}
		wk.keyed[k] = id
		wk.record(id, to[i], via)
	}
	return nil
}

// rollback writes in a transaction that rolls back: nothing may come of it.
func (wk *isoWorker) rollback(ctx context.Context) error {
	to := wk.pick()
	err := pgx.BeginFunc(ctx, wk.b.db.Pool, func(tx pgx.Tx) error {
		id, err := wk.b.ob.Send(ctx, tx, to, wk.message("iso.rolledback", []outbox.Recipient{to}, nil, ""))
		if err != nil {
			return err
		}
		wk.world.mu.Lock()
		wk.world.rolledBack[id] = true
		wk.world.mu.Unlock()
		return errRollback
	})
	if errors.Is(err, errRollback) {
		return nil
	}
	if err == nil {
		return errors.New("the transaction was not rolled back")
	}
	return err
}

var errRollback = errors.New("rolled back on purpose")

// call is api() for a worker goroutine: errors instead of t.FailNow.
func (wk *isoWorker) call(ctx context.Context, method, path string, as outbox.Recipient, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, wk.base+path, nil)
	if err != nil {
		return 0, err
	}
	tok, err := mint(as)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := wk.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if out != nil && res.StatusCode < 300 && res.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			return res.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return res.StatusCode, nil
}

type isoNotification struct {
	ID     string  `json:"id"`
	Type   string  `json:"type"`
	Data   payload `json:"data"`
	ReadAt *string `json:"read_at"`
}

// checkItem requires that n, seen by as, is as's own live, listed row.
func (wk *isoWorker) checkItem(as outbox.Recipient, n isoNotification, what string) error {
	wk.world.mu.Lock()
	owner, ok := wk.world.owner[n.ID]
	wk.world.mu.Unlock()
	if !ok || owner != as {
		return fmt.Errorf("%s as %v returned %s, which belongs to %v (known: %v)", what, as, n.ID, owner, ok)
	}
	if !slices.Contains(n.Data.To, rkey(as)) {
		return fmt.Errorf("%s as %v returned data for %v", what, as, n.Data.To)
	}
	if m := wk.model[n.ID]; m == nil || !m.db || m.deleted {
		return fmt.Errorf("%s as %v returned %s, which is deleted or not in the database channel", what, as, n.ID)
	}
	return nil
}

// digests fingerprints every row of the worker's recipients, all but the
// relay's stamp, per recipient.
func (wk *isoWorker) digests(ctx context.Context) (map[outbox.Recipient]string, error) {
	var tenants, types, ids []string
	for _, r := range wk.mine {
		tenants, types, ids = append(tenants, r.Tenant), append(types, r.Type), append(ids, r.ID)
	}
	rows, err := wk.b.db.Pool.Query(ctx, `SELECT tenant_id, notifiable_type, notifiable_id,
		md5(string_agg(concat_ws('/', id, type, data, sse, channels, read_at, deleted_at, updated_at, op,
			seen_at, archived_at, expires_at), ',' ORDER BY id))
		FROM `+wk.b.db.Table("notifications")+`
		WHERE (tenant_id, notifiable_type, notifiable_id) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
		GROUP BY 1, 2, 3`, tenants, types, ids)
	if err != nil {
		return nil, err
	}
	out := map[outbox.Recipient]string{}
	var to outbox.Recipient
	var sum string
	_, err = pgx.ForEachRow(rows, []any{&to.Tenant, &to.Type, &to.ID, &sum}, func() error {
		out[to] = sum
		return nil
	})
	return out, err
}

// unchanged runs op as as and requires that it changed no row of any other
// of the worker's recipients (nor of as, when self is false).
func (wk *isoWorker) unchanged(ctx context.Context, as outbox.Recipient, self bool, what string, op func() error) error {
	before, err := wk.digests(ctx)
	if err != nil {
		return err
	}
	if err := op(); err != nil {
		return err
	}
	after, err := wk.digests(ctx)
	if err != nil {
		return err
	}
	for _, r := range wk.mine {
		if r == as && self {
			continue
		}
		if before[r] != after[r] {
			return fmt.Errorf("%s as %v changed rows of %v", what, as, r)
		}
	}
	return nil
}

func (wk *isoWorker) list(ctx context.Context) error {
	as := wk.pick()
	return wk.unchanged(ctx, as, false, "list", func() error {
		path := fmt.Sprintf("/notifications?limit=%d", 1+wk.rng.IntN(10))
		if wk.rng.IntN(3) == 0 {
			path += "&unread=true"
		}
		if wk.rng.IntN(4) == 0 {
			path += "&type=iso.progress&type=iso.many"
		}
		switch wk.rng.IntN(4) {
		case 0:
			path += "&archived=true"
		case 1:
			path += "&archived=only"
		}
		for range 3 {
			var page struct {
				Notifications []isoNotification `json:"notifications"`
				NextCursor    *string           `json:"next_cursor"`
			}
			status, err := wk.call(ctx, http.MethodGet, path, as, &page)
			if err != nil {
				return err
			}
			if status != http.StatusOK {
				return fmt.Errorf("list as %v: status %d", as, status)
			}
			for _, n := range page.Notifications {
				if err := wk.checkItem(as, n, "list"); err != nil {
					return err
				}
			}
			if page.NextCursor == nil {
				return nil
			}
			path = "/notifications?cursor=" + *page.NextCursor
		}
		return nil
	})
}

func (wk *isoWorker) count(ctx context.Context) error {
	as := wk.pick()
	return wk.unchanged(ctx, as, false, "count", func() error {
		var c struct{ Count, Unseen int64 }
		status, err := wk.call(ctx, http.MethodGet, "/notifications/unread/count", as, &c)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("count as %v: status %d", as, status)
		}
		want, err := wk.unreadInDB(ctx, as, false)
		if err != nil {
			return err
		}
		if c.Count != want {
			return fmt.Errorf("count as %v: %d, the database has %d", as, c.Count, want)
		}
		if want, err = wk.unseenInDB(ctx, as); err != nil {
			return err
		}
		if c.Unseen != want {
			return fmt.Errorf("unseen count as %v: %d, the database has %d", as, c.Unseen, want)
		}
		return nil
	})
}

// unreadInDB counts as's unread rows, the archived ones too if archived
// (read-all reads them; the count leaves them out).
func (wk *isoWorker) unreadInDB(ctx context.Context, as outbox.Recipient, archived bool) (int64, error) {
	var n int64
	err := wk.b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+wk.b.db.Table("notifications")+
		" WHERE tenant_id = $1 AND notifiable_type = $2 AND notifiable_id = $3"+
		" AND read_at IS NULL AND deleted_at IS NULL AND (archived_at IS NULL OR $4) AND 'database' = ANY (channels)",
		as.Tenant, as.Type, as.ID, archived).Scan(&n)
	return n, err
}

// change reads, unreads or deletes one of the recipient's own rows.
func (wk *isoWorker) change(ctx context.Context) error {
	var ownIDs []string
	as := wk.pick()
	for _, id := range wk.ids {
		if wk.model[id].to == as {
			ownIDs = append(ownIDs, id)
		}
	}
	if len(ownIDs) == 0 {
		return nil
	}
	id := ownIDs[wk.rng.IntN(len(ownIDs))]
	m := wk.model[id]
	live := m.db && !m.deleted
	return wk.unchanged(ctx, as, true, "change", func() error {
		var n isoNotification
		var status int
		var err error
		switch wk.rng.IntN(5) {
		case 0:
			status, err = wk.call(ctx, http.MethodPost, "/notifications/"+id+"/read", as, &n)
		case 1:
			status, err = wk.call(ctx, http.MethodPost, "/notifications/"+id+"/unread", as, &n)
		case 2:
			status, err = wk.call(ctx, http.MethodPost, "/notifications/"+id+"/archive", as, &n)
		case 3:
			status, err = wk.call(ctx, http.MethodPost, "/notifications/"+id+"/unarchive", as, &n)
		default:
			status, err = wk.call(ctx, http.MethodDelete, "/notifications/"+id, as, nil)
			if err == nil && status == http.StatusNoContent {
				if !live {
					return fmt.Errorf("delete %s as %v: 204 for a row that is deleted or not listed", id, as)
				}
				m.deleted = true
				return nil
			}
		}
		if err != nil {
			return err
		}
		switch {
		case live && status == http.StatusOK:
			if n.ID != id {
				return fmt.Errorf("change %s as %v answered %s", id, as, n.ID)
			}
			return wk.checkItem(as, n, "change")
		case !live && status == http.StatusNotFound:
			return nil
		}
		return fmt.Errorf("change %s as %v (listed: %v): status %d", id, as, live, status)
	})
}

// foreign tries read, unread and delete on another recipient's id: 404, and
// nothing changes, for anyone.
func (wk *isoWorker) foreign(ctx context.Context) error {
	as := wk.pick()
	var id string
	local := wk.rng.IntN(4) != 0
	if local {
		// A neighbour's row: the worker can see that nothing changed.
		var others []string
		for _, cand := range wk.ids {
			if wk.model[cand].to != as {
				others = append(others, cand)
			}
		}
		if len(others) == 0 {
			return nil
		}
		id = others[wk.rng.IntN(len(others))]
	} else {
		var ok bool
		if id, ok = wk.world.foreignID(wk.rng, wk.mine); !ok {
			return nil
		}
	}
	return wk.unchanged(ctx, as, false, "foreign op", func() error {
		method, path := http.MethodPost, "/notifications/"+id+"/read"
		switch wk.rng.IntN(5) {
		case 1:
			path = "/notifications/" + id + "/unread"
		case 2:
			path = "/notifications/" + id + "/archive"
		case 3:
			path = "/notifications/" + id + "/unarchive"
		case 4:
			method, path = http.MethodDelete, "/notifications/"+id
		}
		var body struct{ Error string }
		req, err := http.NewRequestWithContext(ctx, method, wk.base+path, nil)
		if err != nil {
			return err
		}
		tok, err := mint(as)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := wk.client.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			return fmt.Errorf("%s %s as %v (another recipient's id): status %d, want 404", method, path, as, res.StatusCode)
		}
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.Error != "not_found" {
			return fmt.Errorf("%s %s as %v: body %+v, %v", method, path, as, body, err)
		}
		return nil
	})
}

func (wk *isoWorker) readAll(ctx context.Context) error {
	as := wk.pick()
	return wk.unchanged(ctx, as, true, "read-all", func() error {
		want, err := wk.unreadInDB(ctx, as, true)
		if err != nil {
			return err
		}
		var out struct{ Updated int64 }
		status, err := wk.call(ctx, http.MethodPost, "/notifications/read-all", as, &out)
		if err != nil {
			return err
		}
		if status != http.StatusOK || out.Updated != want {
			return fmt.Errorf("read-all as %v: status %d, updated %d, want %d", as, status, out.Updated, want)
		}
		left, err := wk.unreadInDB(ctx, as, true)
		if err != nil {
			return err
		}
		if left != 0 {
			return fmt.Errorf("read-all as %v left %d unread", as, left)
		}
		return nil
	})
}

// seen marks the recipient's inbox seen: only theirs.
func (wk *isoWorker) seen(ctx context.Context) error {
	as := wk.pick()
	return wk.unchanged(ctx, as, true, "seen", func() error {
		var out struct{ Updated int64 }
		status, err := wk.call(ctx, http.MethodPost, "/notifications/seen", as, &out)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("seen as %v: status %d", as, status)
		}
		left, err := wk.unseenInDB(ctx, as)
		if err != nil {
			return err
		}
		if left != 0 {
			return fmt.Errorf("seen as %v left %d unseen", as, left)
		}
		return nil
	})
}

func (wk *isoWorker) unseenInDB(ctx context.Context, as outbox.Recipient) (int64, error) {
	var n int64
	err := wk.b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+wk.b.db.Table("notifications")+
		" WHERE tenant_id = $1 AND notifiable_type = $2 AND notifiable_id = $3"+
		" AND seen_at IS NULL AND deleted_at IS NULL AND archived_at IS NULL AND 'database' = ANY (channels)", as.Tenant, as.Type, as.ID).Scan(&n)
	return n, err
}

// mint is token() without a testing.T, for worker goroutines.
func mint(to outbox.Recipient) (string, error) { return relay.Mint(secret, to, time.Hour) }

// TestIsolationPreferences: recipients whose ids collide across tenants
// and notifiable types each mute a different type for the database and
// sse channels. Each reads back exactly its own preferences; its count,
// list and stream follow its own, never a neighbour's, and one
// recipient's PUT leaves the others' untouched.
func TestIsolationPreferences(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r := b.startRelay(t)
	var all []outbox.Recipient
	for _, tenant := range []string{"", "a"} {
		for _, typ := range []string{"User", "Team"} {
			all = append(all, outbox.Recipient{Tenant: tenant, Type: typ, ID: "1"})
		}
	}
	types := []string{"t0", "t1", "t2", "t3"}
	streams := map[outbox.Recipient]*stream{}
	for i, to := range all {
		// Recipient i mutes type i everywhere it may.
		status, out := putPreferences(t, r.URL, to, "application/json",
			`{"types": {"`+types[i]+`": {"database": false, "sse": false}}}`)
		require.Equal(t, http.StatusOK, status, out)
		streams[to] = openStream(t, r.URL, to, -1)
	}
	for _, to := range all {
		for _, typ := range types {
			_, err := b.ob.Send(ctx, b.db.Pool, to, outbox.Message{Kind: typ, SSE: payload{To: []string{rkey(to)}}})
			require.NoError(t, err)
		}
	}
	for i, to := range all {
		var got prefsBody
		res := api(t, http.MethodGet, r.URL+"/notifications/preferences", &to, &got)
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Equal(t, map[string]map[string]bool{types[i]: {"database": false, "sse": false}}, got.Types, "%v", to)

		require.Equal(t, int64(3), b.unread(t, r.URL, to), "%v", to)
		var page struct {
			Notifications []struct{ Type string }
		}
		res = api(t, http.MethodGet, r.URL+"/notifications?limit=100", &to, &page)
		require.Equal(t, http.StatusOK, res.StatusCode)
		var listed []string
		for _, n := range page.Notifications {
			listed = append(listed, n.Type)
		}
		want := slices.DeleteFunc(slices.Clone(types), func(s string) bool { return s == types[i] })
		require.ElementsMatch(t, want, listed, "%v", to)
		var pushed []string
		for range 3 {
			ev := streams[to].next(t, 5*time.Second)
			var p payload
			require.NoError(t, json.Unmarshal(ev.Data.SSE, &p))
			require.Equal(t, []string{rkey(to)}, p.To, "another recipient's event")
			pushed = append(pushed, ev.Data.Type)
		}
		require.ElementsMatch(t, want, pushed, "%v", to)
	}
	for _, s := range streams {
		s.quiet(t, 200*time.Millisecond)
	}

	// One recipient clears its own: only its count changes.
	status, out := putPreferences(t, r.URL, all[0], "application/json", `{"types": {}}`)
	require.Equal(t, http.StatusOK, status, out)
	require.Equal(t, int64(4), b.unread(t, r.URL, all[0]))
	for _, to := range all[1:] {
		require.Equal(t, int64(3), b.unread(t, r.URL, to), "%v", to)
	}
}
