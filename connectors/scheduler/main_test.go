package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/proctest"
)

// A GATEWAY_URL carrying the gateway's basic-auth credentials in its
// userinfo (net/http sends them) works, and the start line must not write
// its password to the logs.
func TestTheStartLineNeverLogsTheGatewaysPassword(t *testing.T) {
	const password = "gw-s3cret-pw"
	secrets := t.TempDir()
	if err := os.WriteFile(filepath.Join(secrets, "internal-token-scheduler"), []byte(credential), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GATEWAY_URL": "http://admin:" + password + "@127.0.0.1:1", "SECRETS_DIR": secrets}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the scheduler starts, logs, and stops at once
	var err error
	logs := proctest.Stdout(t, func() { err = run(ctx, func(k string) string { return env[k] }) })
	if err != nil {
		t.Fatalf("run: %v\n%s", err, logs)
	}
	if !strings.Contains(logs, "scheduler starting") || !strings.Contains(logs, "127.0.0.1:1") {
		t.Fatalf("no start line naming the gateway:\n%s", logs)
	}
	if strings.Contains(logs, password) {
		t.Errorf("the logs hold the gateway's password:\n%s", logs)
	}
}
