package inbox_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/inbox"
	"github.com/bellhophq/bellhop/outbox"
)

func listTypes(t *testing.T, b *testBundle, to outbox.Recipient) []string {
	t.Helper()
	page, err := b.in.List(context.Background(), to, inbox.ListOptions{Limit: 100})
	require.NoError(t, err)
	var types []string
	for _, n := range page.Notifications {
		types = append(types, n.Type)
	}
	return types
}

// A type muted for the database channel is neither listed nor counted,
// unless critical; a type's own setting beats the wildcard; sse and
// webhook settings do not hide anything; another recipient's settings
// change nothing for alice.
func TestPreferencesHideFromListAndCount(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	alice, bob := outbox.User("alice"), outbox.User("bob")
	b.send(t, alice, "chat")
	b.send(t, alice, "invoice")
	b.send(t, alice, "promo")
	_, err := b.ob.Send(ctx, b.db.Pool, alice, outbox.Message{Kind: "promo", IsCritical: true})
	require.NoError(t, err)
	b.send(t, bob, "promo")

	count := func(to outbox.Recipient) int64 {
		c, err := b.in.UnreadCount(ctx, to)
		require.NoError(t, err)
		return c.Count
	}
	require.Equal(t, int64(4), count(alice))

	require.NoError(t, b.in.SetPreferences(ctx, alice, inbox.Preferences{Types: map[string]map[string]bool{
		"promo": {"database": false},
		"chat":  {"sse": false, "webhook": false},
	}}))
	require.Equal(t, int64(3), count(alice), "promo muted, the critical promo still counts")
	require.ElementsMatch(t, []string{"chat", "invoice", "promo"}, listTypes(t, b, alice))
	page, err := b.in.List(ctx, alice, inbox.ListOptions{Types: []string{"promo"}})
	require.NoError(t, err)
	require.Len(t, page.Notifications, 1)
	require.True(t, page.Notifications[0].Critical)
	require.Equal(t, int64(1), count(bob), "alice's preferences are hers")

	// Everything off but invoices.
	require.NoError(t, b.in.SetPreferences(ctx, alice, inbox.Preferences{Types: map[string]map[string]bool{
		"*":       {"database": false},
		"invoice": {"database": true},
	}}))
	require.Equal(t, int64(2), count(alice))
	require.ElementsMatch(t, []string{"invoice", "promo"}, listTypes(t, b, alice))

	got, err := b.in.Preferences(ctx, alice)
	require.NoError(t, err)
	require.Equal(t, map[string]map[string]bool{"*": {"database": false}, "invoice": {"database": true}}, got.Types, "replaced, not merged")
	require.False(t, got.Enabled("chat", "database"))
	require.True(t, got.Enabled("invoice", "database"))
	require.True(t, got.Enabled("chat", "sse"))

	require.NoError(t, b.in.SetPreferences(ctx, alice, inbox.Preferences{}))
	require.Equal(t, int64(4), count(alice))
	got, err = b.in.Preferences(ctx, alice)
	require.NoError(t, err)
	require.Empty(t, got.Types)

	err = b.in.SetPreferences(ctx, alice, inbox.Preferences{Types: map[string]map[string]bool{"x": {"email": false}}})
	require.ErrorIs(t, err, inbox.ErrBadPreferences)
	require.ErrorContains(t, err, `unknown channel "email"`)
	err = b.in.SetPreferences(ctx, alice, inbox.Preferences{Types: map[string]map[string]bool{"": {"sse": false}}})
	require.ErrorIs(t, err, inbox.ErrBadPreferences)
}

// SetPreferences announces the recipient on the preferences channel, at
// commit.
func TestSetPreferencesNotifies(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	conn, err := pgx.Connect(ctx, b.db.URL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "LISTEN "+pgx.Identifier{inbox.PreferencesChannel(b.db.Schema)}.Sanitize())
	require.NoError(t, err)
	to := outbox.Recipient{Tenant: "t", Type: "Team", ID: "7"}
	require.NoError(t, b.in.SetPreferences(ctx, to, inbox.Preferences{Types: map[string]map[string]bool{"*": {"sse": false}}}))
	n, err := conn.WaitForNotification(ctx)
	require.NoError(t, err)
	got, ok := inbox.ParseRecipientPayload(n.Payload)
	require.True(t, ok)
	require.Equal(t, to, got)
}

// Concurrent replacements of one recipient's preferences leave one of
// them, never a mix.
func TestSetPreferencesConcurrentlyLeavesOne(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	alice := outbox.User("alice")
	sets := []inbox.Preferences{
		{Types: map[string]map[string]bool{"a": {"sse": false}, "b": {"sse": false}}},
		{Types: map[string]map[string]bool{"c": {"database": false}, "d": {"webhook": false}}},
	}
	for round := range 20 {
		errs := make(chan error, len(sets))
		for _, p := range sets {
			go func() { errs <- b.in.SetPreferences(ctx, alice, p) }()
		}
		for range sets {
			require.NoError(t, <-errs)
		}
		got, err := b.in.Preferences(ctx, alice)
		require.NoError(t, err)
		require.Contains(t, []map[string]map[string]bool{sets[0].Types, sets[1].Types}, got.Types, "round %d", round)
	}
}
