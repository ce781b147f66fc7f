package fanout

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/bellhoptype"
)

// A batch splits into one message per hash, in order of first appearance,
// and a head naming every hash; each decodes back to what was sent.
func TestSplitAndDecode(t *testing.T) {
	bob := bellhoptype.Recipient{Tenant: "", Type: "User", ID: "bob"}
	ann := bellhoptype.Recipient{Tenant: "acme", Type: "User", ID: "ann"}
	b := Batch{Before: 10, Head: 13, Events: []bellhoptype.Event{
		{Seq: 11, Current: true, ID: "a", To: bob, Op: "created", SSE: []byte(`{"x":1}`)},
		{Seq: 12, Current: true, ID: "b", To: ann, Op: "created"},
		{Seq: 13, Current: true, ID: "c", To: bob, Op: "read"},
	}}
	hashes, bodies, head, err := split(b)
	require.NoError(t, err)
	require.Equal(t, []string{Hash(bob), Hash(ann)}, hashes)

	m, err := decode(hashes[0], bodies[0])
	require.NoError(t, err)
	require.False(t, m.IsHead())
	require.Equal(t, int64(10), m.Before)
	require.Equal(t, int64(13), m.Head)
	require.Len(t, m.Events, 2)
	require.Equal(t, "a", m.Events[0].ID)
	require.JSONEq(t, `{"x":1}`, string(m.Events[0].SSE))
	require.Equal(t, "c", m.Events[1].ID)

	h, err := decode("", head)
	require.NoError(t, err)
	require.True(t, h.IsHead())
	require.Equal(t, hashes, h.Hashes)
}

// A message whose events lie outside its batch or belong to another hash
// is refused: the hub reads the log instead of pushing it.
func TestDecodeRefusesStrayEvents(t *testing.T) {
	bob := bellhoptype.Recipient{Type: "User", ID: "bob"}
	body := func(before, head, seq int64) []byte {
		out, err := json.Marshal(wire{Before: before, Head: head, Events: []bellhoptype.Event{{Seq: seq, To: bob}}})
		require.NoError(t, err)
		return out
	}
	_, err := decode(Hash(bob), body(10, 12, 11))
	require.NoError(t, err)
	_, err = decode(Hash(bob), body(10, 12, 13))
	require.Error(t, err, "after the head")
	_, err = decode(Hash(bob), body(10, 12, 10))
	require.Error(t, err, "at the head before")
	_, err = decode("00000000", body(10, 12, 11))
	require.Error(t, err, "another hash")
	_, err = decode("", body(12, 12, 12))
	require.Error(t, err, "an empty batch")
	_, err = decode("", []byte("not json"))
	require.Error(t, err)
}

// The hash is the one the stamp's NOTIFY names recipients by: md5 of
// tenant, type and id joined by U+001F, first 8 hex digits.
func TestHash(t *testing.T) {
	// md5("\x1fUser\x1f42") computed independently: printf '\x1fUser\x1f42' | md5sum
	require.Equal(t, "2704a895", Hash(bellhoptype.Recipient{Type: "User", ID: "42"}))
}
