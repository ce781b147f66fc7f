package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The relay binary links no container code: testcontainers-go and the
// Docker client were most of its size (28 MB), for the demo's database
// finder alone. cmd/demo and the tests' harness link it instead.
func TestRelayLinksNoDocker(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	require.NoError(t, err, "go list: %s", out)
	var found []string
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(pkg, "testcontainers") || strings.Contains(pkg, "docker") {
			found = append(found, pkg)
		}
	}
	require.Empty(t, found, "cmd/relay links container packages; keep them in internal/pgserver/pgcontainer")
}
