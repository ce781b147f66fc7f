package relay

import (
	"testing"

	"github.com/bellhophq/bellhop/integration/pgtest"
)

// The example and the hardening tests share pgtest's server; Main stops it
// when this package started one, so no cluster outlives the run.
func TestMain(m *testing.M) { pgtest.Main(m) }
