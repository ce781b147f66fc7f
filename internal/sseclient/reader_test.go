package sseclient

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestReaderParsesFrames(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 10000)
	in := ": hello\n\n" +
		"retry: 300\nid: 7\n\n" +
		"id: 8\r\nevent: notification\r\ndata: {\"a\":1}\r\ndata:second\r\n\r\n" +
		"data: " + long + "\nbogus: 1\n\n" +
		"id: 9\ndata: cut"
	r := NewReader(strings.NewReader(in), 64)
	f, err := r.Next()
	require.NoError(t, err)
	require.Equal(t, Frame{ID: "7", HasID: true, Retry: 300 * time.Millisecond}, f)
	f, err = r.Next()
	require.NoError(t, err)
	require.Equal(t, Frame{ID: "8", HasID: true, Event: "notification", Data: "{\"a\":1}\nsecond", HasData: true}, f)
	seq, err := f.Seq()
	require.NoError(t, err)
	require.EqualValues(t, 8, seq)
	f, err = r.Next()
	require.NoError(t, err)
	require.Equal(t, long, f.Data)
	require.Equal(t, "bogus: 1", f.Malformed)
	_, err = r.Next()
	require.ErrorIs(t, err, ErrPartialFrame)

	_, err = NewReader(strings.NewReader(": only a comment\n\n"), 0).Next()
	require.ErrorIs(t, err, io.EOF)
}
