package relay

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseNote(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	n, ok, forged := parseNote("42", key)
	require.True(t, ok)
	require.False(t, forged)
	require.Equal(t, note{head: 42}, n, "a bare head names no recipients")
	signed := "42 40 " + noteMAC(key, "42 40 0a1b2c3d ffee0011") + " 0a1b2c3d ffee0011"
	n, ok, forged = parseNote(signed, key)
	require.True(t, ok)
	require.False(t, forged)
	require.Equal(t, note{head: 42, before: 40, hashes: []string{"0a1b2c3d", "ffee0011"}}, n)
	for _, bad := range []string{"", "x", "42 40", "42 40 0a1b2c3d", "42 x 00 0a1b2c3d"} {
		_, ok, _ := parseNote(bad, key)
		require.False(t, ok, bad)
	}
	// Without the MAC, with another key's, or for other fields, a named
	// note is only a wake-up: it names no one, so the hub never moves its
	// cursor to its head without reading the log.
	for _, forgedNote := range []string{
		"42 40 0a1b2c3d ffee0011",
		"42 40 " + noteMAC([]byte("another key"), "42 40 0a1b2c3d ffee0011") + " 0a1b2c3d ffee0011",
		"9000000000000000000 40 " + noteMAC(key, "42 40 0a1b2c3d ffee0011") + " 0a1b2c3d ffee0011",
		"42 40 " + noteMAC(key, "42 40 0a1b2c3d ffee0011") + " 0a1b2c3d",
	} {
		n, ok, forged := parseNote(forgedNote, key)
		require.True(t, ok, forgedNote)
		require.True(t, forged, forgedNote)
		require.Nil(t, n.hashes, forgedNote)
	}
	_, _, forged = parseNote(signed, nil)
	require.True(t, forged, "a hub with no key trusts no name")
}

// Queued notes that follow on fold into one read; a gap (a dropped note)
// sends the hub to read the log instead.
func TestMergeNotes(t *testing.T) {
	h := &hub{notes: make(chan note, 8)}
	h.notes <- note{head: 20, before: 10, hashes: []string{"b"}}
	h.notes <- note{head: 30, before: 20, hashes: []string{"c"}}
	n, ok := h.merge(note{head: 10, before: 5, hashes: []string{"a"}})
	require.True(t, ok)
	require.Equal(t, note{head: 30, before: 5, hashes: []string{"a", "b", "c"}}, n)

	h.notes <- note{head: 50, before: 40, hashes: []string{"e"}}
	_, ok = h.merge(note{head: 30, before: 20, hashes: []string{"c"}})
	require.False(t, ok)
}
