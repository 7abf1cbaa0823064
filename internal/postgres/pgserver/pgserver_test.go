//go:build unix

package pgserver_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/shopfaas/shop/internal/postgres/pgserver"
)

// The server binaries are found through postgres on PATH, which the server
// runs, and not through pg_ctl, which it does not need: a PATH holding
// initdb and postgres but no pg_ctl is enough (the README's promise).
func TestServerBinariesAreFoundThroughPostgresOnPath(t *testing.T) {
	dir := t.TempDir()
	for _, prog := range []string{"initdb", "postgres"} {
		if err := os.WriteFile(filepath.Join(dir, prog), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir)
	if got, err := pgserver.BinDir(); err != nil || got != dir {
		t.Errorf("BinDir() with only initdb and postgres on PATH = %q (%v), want %q", got, err, dir)
	}
}
