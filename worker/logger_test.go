package worker

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

// River's logger keeps its warnings at any level and its routine info only
// at debug, also through the With attributes River adds to it.
func TestRiverLoggerDropsRoutineInfoUnlessDebug(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		level    slog.Level
		wantInfo bool
	}{
		{slog.LevelInfo, false},
		{slog.LevelDebug, true},
	} {
		var buf bytes.Buffer
		log := riverLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: c.level}))).
			With("queue", "bellhop").WithGroup("g")
		log.Info("producer: Producer job counts")
		log.Warn("a warning")
		require.Contains(t, buf.String(), "a warning", "at %v", c.level)
		require.Contains(t, buf.String(), "component=river", "at %v", c.level)
		require.Equal(t, c.wantInfo, bytes.Contains(buf.Bytes(), []byte("Producer job counts")), "at %v: %s", c.level, &buf)
	}
}
