package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/bellhophq/bellhop/bellhoptype"
	"github.com/bellhophq/bellhop/inbox"
)

// Webhook events (the body's "type").
const (
	// EventCreated: a notification to the webhook channel was written.
	EventCreated = "notification.created"
	// EventUpdated: one was updated in place (a progress upsert).
	EventUpdated = "notification.updated"
	// EventRead: its recipient read it (a notification to the webhook
	// channel, or one with an escalation).
	EventRead = "notification.read"
	// EventUnread: it is still unread its escalation delay after it was
	// written.
	EventUnread = "notification.unread"
)

// webhookQueue is the River queue of webhook and escalation jobs: apart
// from the relay's own, so that a slow receiver never delays a stamp.
const webhookQueue = "bellhop_webhook"

// WebhookBody is the JSON a webhook posts: Standard Webhooks' envelope.
type WebhookBody struct {
	// Type is the event: notification.created, .updated, .read or .unread.
	Type string `json:"type"`
	// Timestamp is when the change happened (for .unread: when the
	// escalation ran).
	Timestamp time.Time `json:"timestamp"`
	// Data is the notification.
	Data WebhookNotification `json:"data"`
}

// WebhookNotification is the notification a webhook carries.
type WebhookNotification struct {
	ID             string          `json:"id"`
	TenantID       string          `json:"tenant_id"`
	NotifiableType string          `json:"notifiable_type"`
	NotifiableID   string          `json:"notifiable_id"`
	Type           string          `json:"type"`
	Data           json.RawMessage `json:"data,omitempty"`
	Critical       bool            `json:"critical"`
	ReadAt         *time.Time      `json:"read_at"`
	CreatedAt      time.Time       `json:"created_at"`
}

// webhookArgs is one webhook to post, fixed when the row was logged: every
// attempt sends the same body under the same webhook-id.
type webhookArgs struct {
	// MsgID is the webhook-id (see webhookID): the same on every attempt,
	// and for a row version logged again after a database crash, so the
	// receiver's deduplication catches that too.
	MsgID string          `json:"msg_id"`
	Event string          `json:"event"`
	Body  json.RawMessage `json:"body"`
}

func (webhookArgs) Kind() string { return "bellhop_webhook" }

// escalateArgs is one notification.unread to post, if still due when it
// runs.
type escalateArgs struct {
	ID string `json:"id"`
}

func (escalateArgs) Kind() string { return "bellhop_escalate" }

type webhookWorker struct {
	river.WorkerDefaults[webhookArgs]
	r *Worker
}

func (w *webhookWorker) Timeout(*river.Job[webhookArgs]) time.Duration {
	return w.r.cfg.WebhookTimeout
}

// Work posts the webhook, unless the recipient muted the webhook channel
// for the type since (and it is not critical).
func (w *webhookWorker) Work(ctx context.Context, job *river.Job[webhookArgs]) error {
	var body WebhookBody
	if err := json.Unmarshal(job.Args.Body, &body); err != nil {
		return river.JobCancel(fmt.Errorf("webhook body: %w", err))
	}
	if muted, err := w.r.webhookMuted(ctx, body.Data); err != nil || muted {
		if muted {
			w.r.metrics.Webhooks.WithLabelValues(job.Args.Event, "skipped").Inc()
		}
		return err
	}
	return w.r.post(ctx, job.JobRow, job.Args.Event, job.Args.MsgID, job.Args.Body)
}

type escalateWorker struct {
	river.WorkerDefaults[escalateArgs]
	r *Worker
}

func (w *escalateWorker) Timeout(*river.Job[escalateArgs]) time.Duration {
	return w.r.cfg.WebhookTimeout
}

// Work posts notification.unread if the notification is still unread and
// not deleted, and its recipient did not mute the webhook channel for it.
// Each attempt looks again: a row read between two attempts is not posted.
func (w *escalateWorker) Work(ctx context.Context, job *river.Job[escalateArgs]) error {
	r := w.r
	var n WebhookNotification
	err := r.pool.QueryRow(ctx, r.q.escalation, job.Args.ID).Scan(&n.ID, &n.TenantID, &n.NotifiableType,
		&n.NotifiableID, &n.Type, &n.Data, &n.Critical, &n.ReadAt, &n.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		r.metrics.Webhooks.WithLabelValues(EventUnread, "skipped").Inc()
		return nil
	}
	if err != nil {
		return fmt.Errorf("escalation: read notification: %w", err)
	}
	if muted, err := r.webhookMuted(ctx, n); err != nil || muted {
		if muted {
			r.metrics.Webhooks.WithLabelValues(EventUnread, "skipped").Inc()
		}
		return err
	}
	body, err := json.Marshal(WebhookBody{Type: EventUnread, Timestamp: time.Now().UTC(), Data: n})
	if err != nil {
		return river.JobCancel(err)
	}
	return r.post(ctx, job.JobRow, EventUnread, "bellhop_"+n.ID+"_unread", body)
}

// webhookMuted reports whether n's recipient turned the webhook channel off
// for its type (never for a critical one).
func (r *Worker) webhookMuted(ctx context.Context, n WebhookNotification) (bool, error) {
	if n.Critical {
		return false, nil
	}
	p, err := r.inbox.Preferences(ctx, bellhoptype.Recipient{Tenant: n.TenantID, Type: n.NotifiableType, ID: n.NotifiableID})
	if err != nil {
		return false, fmt.Errorf("webhook: %w", err)
	}
	return !p.Enabled(n.Type, inbox.ChannelWebhook), nil
}

// post sends body to the webhook URL, signed per Standard Webhooks. A 2xx
// answer completes the job; anything else is an error, and River retries
// with its backoff until the job's attempts run out (it is then kept as
// discarded).
func (r *Worker) post(ctx context.Context, job *rivertype.JobRow, event, msgID string, body []byte) (err error) {
	defer func() {
		outcome := "delivered"
		if err != nil {
			outcome = "failed"
			if job.Attempt >= job.MaxAttempts {
				outcome = "discarded"
			}
		}
		r.metrics.Webhooks.WithLabelValues(event, outcome).Inc()
	}()
	now := time.Now()
	sig, err := r.signer.Sign(msgID, now, body)
	if err != nil {
		return fmt.Errorf("webhook: sign: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "bellhop-relay")
	req.Header.Set(standardwebhooks.HeaderWebhookID, msgID)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	res, err := r.cfg.WebhookClient.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", msgID, err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("webhook %s: the receiver answered %s", msgID, res.Status)
	}
	return nil
}

// webhookID is a webhook's id, the same on every attempt and for a row
// version logged again after a database crash: bellhop_<id>_created (one
// per notification), bellhop_<id>_<xid>_updated or _read (one per row
// version), bellhop_<id>_unread (escalations).
func webhookID(e stampedEvent, event string) string {
	switch event {
	case EventCreated:
		return "bellhop_" + e.ID + "_created"
	case EventUpdated:
		return "bellhop_" + e.ID + "_" + e.Xid + "_updated"
	default:
		return "bellhop_" + e.ID + "_" + e.Xid + "_read"
	}
}

// hookJobs are the webhook and escalation jobs for a stamp's rows: only
// rows to the webhook channel, or with an escalation (their own or their
// type's default), have any, so a stamp of other rows costs a loop.
func (r *Worker) hookJobs(stamped []stampedEvent) ([]river.InsertManyParams, error) {
	var jobs []river.InsertManyParams
	for _, e := range stamped {
		escalate := r.cfg.EscalateAfter[e.Type]
		if e.EscalateUS != nil {
			escalate = time.Duration(*e.EscalateUS) * time.Microsecond
		}
		escalate = max(escalate, 0)
		// A row withdrawn (deleted) before the relay logged it was never
		// news: nothing to post or escalate.
		if (!e.ViaWebhook && escalate == 0) || (e.FirstLogged && e.Op == "deleted") {
			continue
		}
		var events []string
		if e.FirstLogged && e.ViaWebhook {
			events = append(events, EventCreated)
		}
		switch {
		case e.Op == "updated" && e.ViaWebhook && !e.FirstLogged:
			events = append(events, EventUpdated)
		case e.Op == "read":
			events = append(events, EventRead)
		}
		for _, event := range events {
			if !r.events[event] {
				continue
			}
			body, err := json.Marshal(WebhookBody{Type: event, Timestamp: e.Changed.UTC(), Data: WebhookNotification{
				ID: e.ID, TenantID: e.To.Tenant, NotifiableType: e.To.Type, NotifiableID: e.To.ID, Type: e.Type,
				Data: e.HookData, Critical: e.Critical, ReadAt: e.ReadAt, CreatedAt: e.CreatedAt,
			}})
			if err != nil {
				return nil, fmt.Errorf("webhook body: %w", err)
			}
			jobs = append(jobs, river.InsertManyParams{
				Args:       webhookArgs{MsgID: webhookID(e, event), Event: event, Body: body},
				InsertOpts: &river.InsertOpts{Queue: webhookQueue, MaxAttempts: r.cfg.WebhookMaxAttempts},
			})
		}
		if e.FirstLogged && escalate > 0 && e.Listed {
			jobs = append(jobs, river.InsertManyParams{
				Args:       escalateArgs{ID: e.ID},
				InsertOpts: &river.InsertOpts{Queue: webhookQueue, MaxAttempts: r.cfg.WebhookMaxAttempts, ScheduledAt: e.CreatedAt.Add(escalate)},
			})
		}
	}
	return jobs, nil
}
