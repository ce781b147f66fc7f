package worker_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/bellhophq/bellhop/worker"
)

// A webhook receiver: it verifies the signature (any Standard Webhooks
// library does), ignores an id it has handled already (a retry, or a
// delivery repeated after a relay crash), and decodes the body.
func ExampleWebhookBody() {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // BELLHOP_WEBHOOK_SECRET
	wh, _ := standardwebhooks.NewWebhook(secret)
	var mu sync.Mutex
	seen := map[string]bool{} // in production: a unique key in your database

	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if err := wh.Verify(body, req.Header); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		dup := seen[req.Header.Get("webhook-id")]
		seen[req.Header.Get("webhook-id")] = true
		mu.Unlock()
		if dup {
			return // 2xx: handled before
		}
		var b worker.WebhookBody
		if err := json.Unmarshal(body, &b); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		fmt.Println(b.Type, b.Data.Type, "for", b.Data.NotifiableType, b.Data.NotifiableID)
	}))
	defer receiver.Close()

	// What the relay sends, twice (a retry).
	body, _ := json.Marshal(worker.WebhookBody{Type: worker.EventCreated, Timestamp: time.Now(), Data: worker.WebhookNotification{
		ID: "0c6c1b1e-5a37-4c4e-9b8e-2f0f7d0f2a10", NotifiableType: "User", NotifiableID: "42", Type: "invoice.paid",
		Data: json.RawMessage(`{"invoiceId": "1001"}`),
	}})
	for range 2 {
		now := time.Now()
		sig, _ := wh.Sign("bellhop_0c6c1b1e-5a37-4c4e-9b8e-2f0f7d0f2a10_created", now, body)
		req, _ := http.NewRequest(http.MethodPost, receiver.URL, bytes.NewReader(body))
		req.Header.Set("webhook-id", "bellhop_0c6c1b1e-5a37-4c4e-9b8e-2f0f7d0f2a10_created")
		req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("webhook-signature", sig)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		res.Body.Close()
		fmt.Println(res.StatusCode)
	}
	// Output:
	// notification.created invoice.paid for User 42
	// 200
	// 200
}
