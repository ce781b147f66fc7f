// Package inbox is Bellhop's read side: the unread and unseen counts, the
// list, the changes a reader makes (read, unread, read all, seen, archive,
// unarchive, delete) and the recipient's preferences. Every call is scoped
// to one recipient; an id that is not theirs is ErrNotFound.
//
// The relay serves it over HTTP (package relay); an application can also
// call it directly, e.g. to render an inbox server-side, on its own pool.
// A change a reader makes is pushed to the recipient's open streams like
// any other (the update trigger marks the row for the relay to stamp).
package inbox

import (
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bellhophq/bellhop/bellhoptype"
	"github.com/bellhophq/bellhop/internal/sqlq"
)

// Errors a caller can tell apart with errors.Is.
var (
	// ErrNotFound: no such notification for this recipient.
	ErrNotFound = errors.New("notification not found")
	// ErrBadID: the id is not a UUID.
	ErrBadID = errors.New("notification id is not a UUID")
	// ErrBadCursor: the cursor was not made by List.
	ErrBadCursor = errors.New("cursor is not valid")
	// ErrBadLimit: the limit is out of range.
	ErrBadLimit = errors.New("limit is out of range")
	// ErrBadPreferences: SetPreferences got a type or channel it cannot
	// store; the error says which.
	ErrBadPreferences = errors.New("preferences are not valid")
	// ErrBadArchived: ListOptions.Archived is not one of the Archived values.
	ErrBadArchived = errors.New("archived filter is not valid")
	// ErrBadEventID: a mark-seen's event id is not positive.
	ErrBadEventID = errors.New("event id is not valid")
)

// Limits of List.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// Notification is one row of a recipient's inbox.
type Notification struct {
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	Data        json.RawMessage `json:"data"`
	DatabaseKey *string         `json:"database_key"`
	ReadAt      *time.Time      `json:"read_at"`
	// SeenAt is when the recipient last marked their inbox seen with this
	// notification in it (the bell's count), nil while unseen.
	SeenAt *time.Time `json:"seen_at"`
	// ArchivedAt is when the recipient archived it, nil unless archived.
	ArchivedAt *time.Time `json:"archived_at"`
	// ExpiresAt is when it leaves the inbox by itself, nil for never.
	ExpiresAt *time.Time `json:"expires_at"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	// Critical notifications ignore the recipient's preferences.
	Critical bool `json:"critical"`
}

// Count is the unread count, and the unseen count (what a bell shows).
// Neither counts archived or expired notifications. When Capped, the real
// unread count is Count or more; likewise UnseenCapped for Unseen.
type Count struct {
	Count        int64 `json:"count"`
	Capped       bool  `json:"capped"`
	Unseen       int64 `json:"unseen"`
	UnseenCapped bool  `json:"unseen_capped"`
}

// Archived says what List does with archived notifications.
type Archived string

const (
	// ArchivedExclude leaves them out (the default).
	ArchivedExclude Archived = "exclude"
	// ArchivedInclude lists them with the others.
	ArchivedInclude Archived = "include"
	// ArchivedOnly lists only them: an "Archived" tab.
	ArchivedOnly Archived = "only"
)

// ListOptions filter and page List.
type ListOptions struct {
	// Limit is the page size, 1 to MaxLimit; 0 means DefaultLimit.
	Limit int
	// Cursor is a previous page's NextCursor; "" starts at the newest.
	Cursor string
	// UnreadOnly leaves out read notifications.
	UnreadOnly bool
	// Types keeps only these types; empty keeps all.
	Types []string
	// Archived says whether archived notifications are listed. Defaults to
	// ArchivedExclude.
	Archived Archived
}

// Page is one page of List.
type Page struct {
	Notifications []Notification `json:"notifications"`
	// NextCursor is nil on the last page.
	NextCursor *string `json:"next_cursor"`
}

// Config configures an Inbox.
type Config struct {
	// Schema is Bellhop's schema, as migrated. Defaults to "bellhop".
	Schema string
	// CountCap bounds UnreadCount: counting stops there and the count says
	// it is capped. Defaults to 1000.
	CountCap int64
}

// DB is what an Inbox runs its statements on: a *pgxpool.Pool (the usual
// case: every call is its own transaction), a *pgx.Conn, or a pgx.Tx, so
// that a change commits or rolls back with the application's own (see
// WithTx).
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	// Begin starts MarkAllRead's transaction; on a pgx.Tx, a savepoint.
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Inbox reads and changes recipients' notifications.
type Inbox struct {
	db       DB
	countCap int64
	// prefsChannel is where SetPreferences announces a change.
	prefsChannel string
	q            struct {
		count, list, markRead, markUnread, quiet, markAll, readAll, delete string
		archive, unarchive, markSeen, insertSeen                           string
		prefs, lockPrefs, setPrefs                                         string
	}
}

//go:embed sql/*.sql
var queryFiles embed.FS

// New returns an Inbox that runs on db.
func New(db DB, cfg Config) (*Inbox, error) {
	if cfg.Schema == "" {
		cfg.Schema = sqlq.DefaultSchema
	}
	if cfg.CountCap <= 0 {
		cfg.CountCap = 1000
	}
	set, err := sqlq.Load(queryFiles, cfg.Schema)
	if err != nil {
		return nil, fmt.Errorf("inbox: %w", err)
	}
	in := &Inbox{db: db, countCap: cfg.CountCap, prefsChannel: PreferencesChannel(cfg.Schema)}
	in.q.count = set.Get("UnreadCount")
	in.q.list = set.Get("List")
	in.q.markRead = set.Get("MarkRead")
	in.q.markUnread = set.Get("MarkUnread")
	in.q.quiet = set.Get("Quiet")
	in.q.markAll = set.Get("MarkAllRead")
	in.q.readAll = set.Get("InsertReadAll")
	in.q.delete = set.Get("Delete")
	in.q.prefs = set.Get("Preferences")
	in.q.lockPrefs = set.Get("LockPreferences")
	in.q.setPrefs = set.Get("SetPreferences")
	in.q.archive = set.Get("Archive")
	in.q.unarchive = set.Get("Unarchive")
	in.q.markSeen = set.Get("MarkSeen")
	in.q.insertSeen = set.Get("InsertSeen")
	return in, set.Err()
}

// WithTx returns a copy of in that runs on tx, the application's
// transaction: a change made through it is visible, and pushed to the
// recipient's streams, only if tx commits. The copy is as cheap as a
// struct; make one per transaction.
func (in *Inbox) WithTx(tx pgx.Tx) *Inbox {
	c := *in
	c.db = tx
	return &c
}

// UnreadCount counts to's unread and unseen notifications, each up to the
// configured cap.
func (in *Inbox) UnreadCount(ctx context.Context, to bellhoptype.Recipient) (Count, error) {
	var n, unseen int64
	if err := in.db.QueryRow(ctx, in.q.count, to.Tenant, to.Type, to.ID, in.countCap).Scan(&n, &unseen); err != nil {
		return Count{}, fmt.Errorf("inbox: unread count: %w", err)
	}
	return Count{Count: n, Capped: n >= in.countCap, Unseen: unseen, UnseenCapped: unseen >= in.countCap}, nil
}

// The position before every row, for the first page.
var (
	firstTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	firstID   = uuid.Max.String()
)

// List returns one page of to's notifications, newest first.
func (in *Inbox) List(ctx context.Context, to bellhoptype.Recipient, opts ListOptions) (Page, error) {
	limit := opts.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	if limit < 1 || limit > MaxLimit {
		return Page{}, fmt.Errorf("%w: %d (want 1 to %d)", ErrBadLimit, limit, MaxLimit)
	}
	at, id := firstTime, firstID
	if opts.Cursor != "" {
		var err error
		if at, id, err = decodeCursor(opts.Cursor); err != nil {
			return Page{}, err
		}
	}
	types := opts.Types
	if types == nil {
		types = []string{}
	}
	archived := opts.Archived
	switch archived {
	case "":
		archived = ArchivedExclude
	case ArchivedExclude, ArchivedInclude, ArchivedOnly:
	default:
		return Page{}, fmt.Errorf("%w: %q (want %q, %q or %q)", ErrBadArchived, archived, ArchivedExclude, ArchivedInclude, ArchivedOnly)
	}
	// One row more than asked tells whether there is a next page.
	rows, err := in.db.Query(ctx, in.q.list, to.Tenant, to.Type, to.ID, at, id, opts.UnreadOnly, types, limit+1, string(archived))
	if err != nil {
		return Page{}, fmt.Errorf("inbox: list: %w", err)
	}
	items, err := pgx.CollectRows(rows, scanNotification)
	if err != nil {
		return Page{}, fmt.Errorf("inbox: list: %w", err)
	}
	page := Page{Notifications: items}
	if len(items) > limit {
		page.Notifications = items[:limit]
		last := items[limit-1]
		next := encodeCursor(last.CreatedAt, last.ID)
		page.NextCursor = &next
	}
	return page, nil
}

// MarkRead marks one notification read. Marking a read one again is a no-op.
func (in *Inbox) MarkRead(ctx context.Context, to bellhoptype.Recipient, id string) (Notification, error) {
	return in.change(ctx, in.q.markRead, to, id)
}

// MarkUnread marks one notification unread.
func (in *Inbox) MarkUnread(ctx context.Context, to bellhoptype.Recipient, id string) (Notification, error) {
	return in.change(ctx, in.q.markUnread, to, id)
}

// Archive moves one notification out of the inbox into its archive: it is
// listed only when asked for (ListOptions.Archived), and not counted.
// Archiving an archived one again is a no-op.
func (in *Inbox) Archive(ctx context.Context, to bellhoptype.Recipient, id string) (Notification, error) {
	return in.change(ctx, in.q.archive, to, id)
}

// Unarchive moves one archived notification back into the inbox.
func (in *Inbox) Unarchive(ctx context.Context, to bellhoptype.Recipient, id string) (Notification, error) {
	return in.change(ctx, in.q.unarchive, to, id)
}

// SeenOptions narrows MarkSeen.
type SeenOptions struct {
	// UpTo, if positive, marks only the notifications the reader can have
	// been shown by the event with this id: those whose current version
	// the relay pushed at or before it. Defaults to 0: every notification
	// committed by now.
	UpTo int64
}

// MarkSeen marks to's unseen notifications seen (the bell's count goes to
// zero; each stays unread) and returns how many changed. The stream
// carries one seen event for it, not one per row. It runs in a
// transaction of its own, or in a savepoint of the one given to WithTx.
func (in *Inbox) MarkSeen(ctx context.Context, to bellhoptype.Recipient, opts SeenOptions) (int64, error) {
	if opts.UpTo < 0 {
		return 0, fmt.Errorf("%w: %d", ErrBadEventID, opts.UpTo)
	}
	var upTo *int64
	if opts.UpTo > 0 {
		upTo = &opts.UpTo
	}
	var n int64
	err := pgx.BeginFunc(ctx, in.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, in.q.markSeen, to.Tenant, to.Type, to.ID, upTo)
		if err != nil {
			return err
		}
		if n = tag.RowsAffected(); n == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, in.q.insertSeen, to.Tenant, to.Type, to.ID, upTo)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("inbox: mark seen: %w", err)
	}
	return n, nil
}

func (in *Inbox) change(ctx context.Context, query string, to bellhoptype.Recipient, id string) (Notification, error) {
	if err := checkID(id); err != nil {
		return Notification{}, err
	}
	rows, err := in.db.Query(ctx, query, id, to.Tenant, to.Type, to.ID)
	if err != nil {
		return Notification{}, fmt.Errorf("inbox: update %s: %w", id, err)
	}
	n, err := pgx.CollectExactlyOneRow(rows, scanNotification)
	if errors.Is(err, pgx.ErrNoRows) {
		return Notification{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Notification{}, fmt.Errorf("inbox: update %s: %w", id, err)
	}
	return n, nil
}

// MarkAllRead marks every unread notification of to read and returns how
// many changed. The stream carries one read_all event for it, not one per
// row. It runs in a transaction of its own, or in a savepoint of the one
// given to WithTx.
func (in *Inbox) MarkAllRead(ctx context.Context, to bellhoptype.Recipient) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, in.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, in.q.quiet, "on"); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, in.q.markAll, to.Tenant, to.Type, to.ID)
		if err != nil {
			return err
		}
		// Loud again whatever happened: on WithTx's transaction this is a
		// savepoint, and a setting left on would outlive it and silence the
		// application's later changes in the same transaction.
		if _, err := tx.Exec(ctx, in.q.quiet, "off"); err != nil {
			return err
		}
		if n = tag.RowsAffected(); n == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, in.q.readAll, to.Tenant, to.Type, to.ID)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("inbox: mark all read: %w", err)
	}
	return n, nil
}

// Delete removes one notification from to's inbox.
func (in *Inbox) Delete(ctx context.Context, to bellhoptype.Recipient, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	tag, err := in.db.Exec(ctx, in.q.delete, id, to.Tenant, to.Type, to.ID)
	if err != nil {
		return fmt.Errorf("inbox: delete %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return nil
}

func scanNotification(row pgx.CollectableRow) (Notification, error) {
	var n Notification
	err := row.Scan(&n.ID, &n.Type, &n.Data, &n.DatabaseKey, &n.ReadAt, &n.SeenAt, &n.ArchivedAt, &n.ExpiresAt, &n.CreatedAt, &n.UpdatedAt, &n.Critical)
	return n, err
}

func checkID(id string) error {
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		return fmt.Errorf("%w: %q", ErrBadID, id)
	}
	return nil
}

// A cursor is the position of the last row of a page: its created_at in
// microseconds (Postgres' precision) and its id, base64url-encoded.
func encodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixMicro(), 10) + "." + id))
}

// minCursorMicros is PostgreSQL's earliest timestamptz (4714-11-24 BC) in
// Unix microseconds. No row is older, and an earlier time fails the query
// ("timestamp out of range"), which would answer a client's bad cursor with
// a 500. Every int64 above it is in range.
const minCursorMicros = -210866803200000000

func decodeCursor(s string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return time.Time{}, "", ErrBadCursor
	}
	micros, id, ok := strings.Cut(string(b), ".")
	if !ok || checkID(id) != nil {
		return time.Time{}, "", ErrBadCursor
	}
	us, err := strconv.ParseInt(micros, 10, 64)
	if err != nil || us < minCursorMicros {
		return time.Time{}, "", ErrBadCursor
	}
	return time.UnixMicro(us).UTC(), id, nil
}
