package relay

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/inbox"
	"github.com/bellhophq/bellhop/integration/pgtest"
	"github.com/bellhophq/bellhop/outbox"
)

// sseEvent is one event dispatched by sseParse.
type sseEvent struct {
	name, data, lastID string
}

// sseParse is an event-stream parser written from the WHATWG HTML spec
// (§9.2.6 "Interpreting an event stream"), independent of the relay's
// encoder: lines end in CRLF, LF or CR; a line starting with ':' is a
// comment; "field: value" loses one leading space; data lines are joined
// with LF; a blank line dispatches; an event with an empty data buffer is
// not dispatched (but its id still moves the last event id); an unfinished
// event at the end of the stream is discarded.
func sseParse(stream []byte) []sseEvent {
	s := string(stream)
	s = strings.TrimPrefix(s, "\uFEFF")
	var events []sseEvent
	var data strings.Builder
	eventType, lastID, idBuffer := "", "", ""
	for len(s) > 0 {
		i := strings.IndexAny(s, "\r\n")
		if i < 0 {
			break // no line end: the rest is an unfinished line, discarded
		}
		line := s[:i]
		if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
			s = s[i+2:]
		} else {
			s = s[i+1:]
		}
		if line == "" {
			// Dispatch.
			lastID = idBuffer
			if data.Len() == 0 {
				eventType = ""
				continue
			}
			d := strings.TrimSuffix(data.String(), "\n")
			name := eventType
			if name == "" {
				name = "message"
			}
			events = append(events, sseEvent{name: name, data: d, lastID: lastID})
			data.Reset()
			eventType = ""
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value := line, ""
		if j := strings.IndexByte(line, ':'); j >= 0 {
			field, value = line[:j], line[j+1:]
			value = strings.TrimPrefix(value, " ")
		}
		switch field {
		case "event":
			eventType = value
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
		case "id":
			if !strings.ContainsRune(value, 0) {
				idBuffer = value
			}
		case "retry":
			// Ignored here.
		}
	}
	return events
}

func TestFrameParserFollowsTheSSESpec(t *testing.T) {
	// The parser itself must be right, or the fuzz proves nothing.
	got := sseParse([]byte("retry: 2000\r: c\r\rid: 1\revent: x\rdata: a\r\ndata:b\n\ndata: tail-without-blank-line\n"))
	require.Equal(t, []sseEvent{{name: "x", data: "a\nb", lastID: "1"}}, got)
	got = sseParse([]byte("id: 7\n\ndata\n\n"))
	require.Equal(t, []sseEvent{{name: "message", data: "", lastID: "7"}}, got, "data with no colon is an empty data line; the id persists")
	require.Empty(t, sseParse([]byte("id: 3\nevent: y\n\n")), "no data, no dispatch")
}

// fuzzSSE is the live payload the fuzz builds; Extra has one fuzzed key.
type fuzzSSE struct {
	Text  string            `json:"text"`
	Extra map[string]string `json:"extra"`
	List  []string          `json:"list"`
}

// valid is what encoding/json makes of s: every byte that is not part of a
// valid UTF-8 sequence (a lone surrogate's encoding included) becomes U+FFFD.
func valid(s string) string { return string([]rune(s)) }

func frameFor(t testing.TB, seq int64, op, id, typ string, key *string, readAt *time.Time, sse fuzzSSE) ([]byte, Event) {
	raw, err := json.Marshal(sse)
	require.NoError(t, err)
	ev := Event{Seq: seq, Op: op, ID: id, Type: typ, DatabaseKey: key, ReadAt: readAt, SSE: raw}
	return encodeFrame(seq, "notification", &ev), ev
}

// checkFrame parses frame as a browser would and requires one notification
// event with the seq as its id and data equal to what went in.
func checkFrame(t testing.TB, frame []byte, seq int64, op, id, typ string, key *string, readAt *time.Time, sse fuzzSSE) {
	require.NotContains(t, string(frame), "\r", "a raw CR in a frame ends a line early")
	lines := strings.Split(string(frame), "\n")
	require.Len(t, lines, 5, "id, event, data, blank, and the empty tail: no LF inside the data line; frame %q", frame)
	require.True(t, strings.HasPrefix(lines[2], "data: "), "line 3 is the data line: %q", lines[2])
	require.Equal(t, []string{"", ""}, lines[3:])

	events := sseParse(frame)
	require.Len(t, events, 1, "frame %q", frame)
	got := events[0]
	require.Equal(t, "notification", got.name)
	require.Equal(t, strconv.FormatInt(seq, 10), got.lastID)
	require.True(t, json.Valid([]byte(got.data)), "data is JSON: %q", got.data)

	var back Event
	require.NoError(t, json.Unmarshal([]byte(got.data), &back))
	require.Equal(t, seq, back.Seq)
	require.Equal(t, valid(op), back.Op)
	require.Equal(t, valid(id), back.ID)
	require.Equal(t, valid(typ), back.Type)
	if key == nil {
		require.Nil(t, back.DatabaseKey)
	} else {
		require.NotNil(t, back.DatabaseKey)
		require.Equal(t, valid(*key), *back.DatabaseKey)
	}
	if readAt == nil {
		require.Nil(t, back.ReadAt)
	} else {
		require.NotNil(t, back.ReadAt)
		require.True(t, readAt.Equal(*back.ReadAt), "read_at %s came back as %s", readAt, back.ReadAt)
	}
	var payload fuzzSSE
	require.NoError(t, json.Unmarshal(back.SSE, &payload))
	want := fuzzSSE{Text: valid(sse.Text), Extra: map[string]string{}, List: []string{}}
	for k, v := range sse.Extra {
		want.Extra[valid(k)] = valid(v)
	}
	for _, v := range sse.List {
		want.List = append(want.List, valid(v))
	}
	if len(want.Extra) == 0 && payload.Extra == nil {
		payload.Extra = map[string]string{}
	}
	if len(want.List) == 0 && payload.List == nil {
		payload.List = []string{}
	}
	require.Equal(t, want, payload)
}

// nasty are strings that break naive SSE encoders and JSON round trips.
var nasty = []string{
	"",
	"plain",
	"\n",
	"\r",
	"\r\n",
	"\n\n",
	"a\n\ndata: forged\n\n",
	"x\rid: 999\r\revent: evil\rdata: {}\r\r",
	"\x00",
	"nul\x00in\x00the\x00middle",
	"\xed\xa0\x80",               // U+D800 encoded as UTF-8: a lone high surrogate, invalid
	"\xed\xbf\xbf",               // U+DFFF: a lone low surrogate
	"a\xed\xa0\x80\xed\xb0\x80b", // a surrogate pair encoded separately (CESU-8)
	"\xff\xfe\xfd",
	"\xc3",     // a truncated 2-byte sequence
	"\xe2\x82", // a truncated 3-byte sequence
	"\u2028\u2029",
	"\uFEFFbom",
	"<script>&amp;</script>",
	`"quoted" \ back\slash`,
	": comment?",
	"id: 1",
	"\t\v\f\b",
	"🔔 héllo 日本",
	strings.Repeat("long\n", 20000),
	strings.Repeat("\xff", 5000),
	strings.Repeat("é", 70000),
}

func TestFrameHasNoRawLineBreakInsideData(t *testing.T) {
	key := "k\r\ney"
	readAt := time.Date(2024, 2, 29, 23, 59, 59, 123456000, time.UTC)
	for i, s := range nasty {
		sse := fuzzSSE{Text: s, Extra: map[string]string{s: s}, List: []string{s, "\n", s}}
		for _, k := range []*string{nil, &key, &s} {
			frame, _ := frameFor(t, int64(i+1), "created", s, s, k, &readAt, sse)
			checkFrame(t, frame, int64(i+1), "created", s, s, k, &readAt, sse)
		}
	}
	// A refetch event (no id, no payload) as resume sends it.
	frame := encodeFrame(42, "notification", &Event{Seq: 42, Op: "refetch"})
	require.Equal(t, "id: 42\nevent: notification\ndata: {\"seq\":42,\"op\":\"refetch\",\"database_key\":null,\"read_at\":null,\"sse\":null}\n\n", string(frame))
	events := sseParse(frame)
	require.Len(t, events, 1)
	require.Equal(t, "42", events[0].lastID)
}

func FuzzEncodeFrame(f *testing.F) {
	for i, s := range nasty {
		if len(s) > 4096 {
			// The fuzz engine's corpus entries are best kept small; the unit
			// test above covers the long ones.
			continue
		}
		f.Add(int64(i), "created", s, s, s, true, int64(1700000000), true, s, s, s)
		f.Add(int64(-i), "read_all", "", "", s, false, int64(0), false, "", s, "\n")
	}
	f.Add(int64(9223372036854775807), "updated", "7d0c\x00", "t\r", "\xed\xa0\x80", true, int64(253402300799), true, "\r\n", "\xff", "\u2028")
	f.Add(int64(-9223372036854775808), "deleted", "\n\n", "data: x", "id: 1\n", true, int64(-62135596800), true, "\x00", "\x00", "\x00")
	f.Fuzz(func(t *testing.T, seq int64, op, id, typ, key string, hasKey bool, readUnix int64, hasRead bool, text, extraKey, extraValue string) {
		var k *string
		if hasKey {
			k = &key
		}
		var readAt *time.Time
		if hasRead {
			// Times PostgreSQL can hold and time.Time can marshal: years 1-9999.
			const lo, hi = -62135596800, 253402300799
			span := int64(hi - lo + 1)
			sec := lo + ((readUnix%span)+span)%span
			ts := time.Unix(sec, (readUnix&0xfffff)*1000).UTC()
			readAt = &ts
		}
		sse := fuzzSSE{Text: text, Extra: map[string]string{extraKey: extraValue}, List: []string{text, extraValue}}
		frame, _ := frameFor(t, seq, op, id, typ, k, readAt, sse)
		checkFrame(t, frame, seq, op, id, typ, k, readAt, sse)
	})
}

// Inbox cursors come from clients (?cursor=). inbox.List must refuse any
// string it did not make with ErrBadCursor, or serve a page: never panic,
// never fail with a database error (which the API would answer with 500).
func FuzzInboxCursor(f *testing.F) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	const id = "7d0c3a3e-0000-4000-8000-000000000001"
	for _, s := range []string{
		"", "'; --", "%27", "====", "a", "\x00",
		enc("1700000000000000." + id),
		enc("0." + id),
		enc("-1." + id),
		enc("9223372036854775807." + id),
		enc("-9223372036854775808." + id),
		enc("-62135596800000000." + id),  // year 1
		enc("-210866803200000000." + id), // 4713 BC, PostgreSQL's lowest
		enc("-300000000000000000." + id),
		enc("9224318016000000000." + id),
		enc("1." + strings.ToUpper(id)),
		enc("1.{" + id + "}"),
		enc("1." + id + "." + id),
		enc("1e9." + id),
		enc(" 1." + id),
		enc("+1." + id),
		enc("1.urn:uuid:" + id),
		enc("1.\xed\xa0\x80"),
		base64.StdEncoding.EncodeToString([]byte("1." + id)),
	} {
		f.Add(s)
	}
	db := pgtest.New(f)
	in, err := inbox.New(db.Pool, inbox.Config{Schema: db.Schema})
	require.NoError(f, err)
	ob, err := outbox.New(outbox.Config{Schema: db.Schema})
	require.NoError(f, err)
	for i := range 3 {
		_, err := ob.Send(context.Background(), db.Pool, outbox.User("c"), outbox.Message{Kind: "k" + strconv.Itoa(i)})
		require.NoError(f, err)
	}
	f.Fuzz(func(t *testing.T, cursor string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		page, err := in.List(ctx, outbox.User("c"), inbox.ListOptions{Cursor: cursor, Limit: 2})
		if err != nil {
			require.True(t, errors.Is(err, inbox.ErrBadCursor), "cursor %q: want ErrBadCursor or a page, got %v", cursor, err)
			return
		}
		require.LessOrEqual(t, len(page.Notifications), 2)
		if page.NextCursor != nil {
			// A cursor the API made is always accepted.
			_, err := in.List(ctx, outbox.User("c"), inbox.ListOptions{Cursor: *page.NextCursor, Limit: 2})
			require.NoError(t, err)
		}
	})
}
