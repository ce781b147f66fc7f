package inbox

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/bellhophq/bellhop/bellhoptype"
	"github.com/bellhophq/bellhop/internal/sqlq"
)

// Channels a preference can turn off.
const (
	ChannelDatabase = "database" // listed and counted
	ChannelSSE      = "sse"      // pushed to open streams
	ChannelWebhook  = "webhook"  // posted to the webhook URL
)

// AnyType is the preference type that applies to every type without a
// preference of its own.
const AnyType = "*"

// MaxPreferenceTypes bounds the types one recipient's preferences name.
const MaxPreferenceTypes = 256

var channels = []string{ChannelDatabase, ChannelSSE, ChannelWebhook}

// Preferences are one recipient's settings: for a notification type (or
// AnyType), which channels are on (true) or off (false). A channel a type
// does not mention follows AnyType's setting, and is on without one.
// Critical notifications ignore them.
type Preferences struct {
	Types map[string]map[string]bool `json:"types"`
}

// Enabled reports whether notifications of type typ go to channel.
func (p Preferences) Enabled(typ, channel string) bool {
	if on, ok := p.Types[typ][channel]; ok {
		return on
	}
	if on, ok := p.Types[AnyType][channel]; ok {
		return on
	}
	return true
}

// Mutes reports whether p turns channel off for any type: only then does
// a reader need to look a notification's type up.
func (p Preferences) Mutes(channel string) bool {
	for _, chans := range p.Types {
		if on, ok := chans[channel]; ok && !on {
			return true
		}
	}
	return false
}

// PreferencesChannel is the PostgreSQL channel SetPreferences notifies on
// for schema, with the recipient as payload (see RecipientPayload): relays
// listen on it to reload the preferences of their open streams.
func PreferencesChannel(schema string) string {
	if schema == "" {
		schema = sqlq.DefaultSchema
	}
	return sqlq.Channel(schema, "preferences")
}

// RecipientPayload is the payload SetPreferences notifies with: the
// recipient as a JSON array [tenant, type, id].
func RecipientPayload(to bellhoptype.Recipient) string {
	b, _ := json.Marshal([]string{to.Tenant, to.Type, to.ID})
	return string(b)
}

// ParseRecipientPayload reads RecipientPayload's output.
func ParseRecipientPayload(s string) (bellhoptype.Recipient, bool) {
	var v []string
	if json.Unmarshal([]byte(s), &v) != nil || len(v) != 3 {
		return bellhoptype.Recipient{}, false
	}
	return bellhoptype.Recipient{Tenant: v[0], Type: v[1], ID: v[2]}, true
}

// Preferences returns to's preferences; with none set, Types is empty.
func (in *Inbox) Preferences(ctx context.Context, to bellhoptype.Recipient) (Preferences, error) {
	rows, err := in.db.Query(ctx, in.q.prefs, to.Tenant, to.Type, to.ID)
	if err != nil {
		return Preferences{}, fmt.Errorf("inbox: preferences: %w", err)
	}
	p := Preferences{Types: map[string]map[string]bool{}}
	var typ, channel string
	var on bool
	_, err = pgx.ForEachRow(rows, []any{&typ, &channel, &on}, func() error {
		if p.Types[typ] == nil {
			p.Types[typ] = map[string]bool{}
		}
		p.Types[typ][channel] = on
		return nil
	})
	if err != nil {
		return Preferences{}, fmt.Errorf("inbox: preferences: %w", err)
	}
	return p, nil
}

// SetPreferences replaces to's preferences with p and tells the relays,
// whose open streams of to reload them. It runs in a transaction of its
// own (one per recipient at a time), or in a savepoint of the one given to
// WithTx: then both happen only if the application's transaction commits.
func (in *Inbox) SetPreferences(ctx context.Context, to bellhoptype.Recipient, p Preferences) error {
	if err := p.Check(); err != nil {
		return err
	}
	var types, chans []string
	var on []bool
	for typ, cs := range p.Types {
		for c, v := range cs {
			types, chans, on = append(types, typ), append(chans, c), append(on, v)
		}
	}
	if types == nil {
		types, chans, on = []string{}, []string{}, []bool{}
	}
	err := pgx.BeginFunc(ctx, in.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, in.q.lockPrefs, to.Tenant, to.Type, to.ID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, in.q.setPrefs, to.Tenant, to.Type, to.ID, types, chans, on,
			in.prefsChannel, RecipientPayload(to))
		return err
	})
	if err != nil {
		return fmt.Errorf("inbox: set preferences: %w", err)
	}
	return nil
}

// Check reports the first thing SetPreferences cannot store, wrapping
// ErrBadPreferences.
func (p Preferences) Check() error {
	if len(p.Types) > MaxPreferenceTypes {
		return fmt.Errorf("%w: %d types, over the limit of %d", ErrBadPreferences, len(p.Types), MaxPreferenceTypes)
	}
	for typ, cs := range p.Types {
		if typ == "" || len(typ) > bellhoptype.MaxNameBytes || !utf8.ValidString(typ) || strings.ContainsRune(typ, 0) {
			return fmt.Errorf("%w: type %s must be 1 to %d bytes of UTF-8 text without NUL", ErrBadPreferences, strconv.Quote(typ), bellhoptype.MaxNameBytes)
		}
		for c := range cs {
			if !slices.Contains(channels, c) {
				return fmt.Errorf("%w: type %s has unknown channel %s (want database, sse or webhook)", ErrBadPreferences, strconv.Quote(typ), strconv.Quote(c))
			}
		}
	}
	return nil
}
