package outbox

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/integration/pgtest"
)

// The outbox measures JSON as PostgreSQL writes jsonb out, byte for byte,
// so that what it accepts the table's size constraints accept too.
func TestStoredSizeIsPostgresText(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.URL(t))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(ctx) })
	for _, in := range []string{
		`{}`, `[]`, `{"a":1}`, `{"a":1,"b":[1,2,3],"c":{"d":null}}`, `[true,false,null]`,
		`{"a":1,"a":22}`, `{"b":1,"a":2,"b":333}`,
		`"<>&\u2028é日本"`, `"\u0001\b\f\n\r\t\"\\/"`, `"\u001f\u007f"`,
		`1`, `-1`, `0`, `-0`, `-0.0`, `0.000`, `1.50`, `1e2`, `1E+2`, `1.5e1`, `1.50e1`, `1e-2`,
		`0.000123e5`, `0e5`, `0.0e-3`, `-12.345e-1`, `123456789012345678901234567890`, `1e1000`, `-1e-1000`,
		`{"x": 1.0e300, "y": [1e20, 2.5E-3]}`,
	} {
		got, err := storedSize([]byte(in))
		require.NoError(t, err, in)
		var want int
		require.NoError(t, conn.QueryRow(ctx, "SELECT octet_length($1::jsonb::text)", in).Scan(&want), in)
		require.Equal(t, want, got, in)
	}
	_, err = storedSize([]byte(`{"a":"x\u0000y"}`))
	require.ErrorContains(t, err, "NUL")
	require.Greater(t, numberSize("1e99999999999"), MaxDataBytes, "an exponent PostgreSQL refuses is over every limit")
	require.Equal(t, 1+len(strings.Repeat("0", 10)), numberSize("1e10"))
}
