package relay

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseNote(t *testing.T) {
	n, ok := parseNote("42")
	require.True(t, ok)
	require.Equal(t, note{head: 42}, n, "a bare head names no recipients")
	n, ok = parseNote("42 40 0a1b2c3d ffee0011")
	require.True(t, ok)
	require.Equal(t, note{head: 42, before: 40, hashes: []string{"0a1b2c3d", "ffee0011"}}, n)
	for _, bad := range []string{"", "x", "42 40", "42 x 0a1b2c3d"} {
		_, ok := parseNote(bad)
		require.False(t, ok, bad)
	}
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
