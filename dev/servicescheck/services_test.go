// Package servicescheck tests dev/services.sh (make services) with stub
// commands and a configuration directory of its own (PG_CONF_DIR): nothing
// of the machine's PostgreSQL is read or changed.
package servicescheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// stubs is a PATH directory holding the tools the script needs (linked to
// the real ones) and each stub command named in scripts.
func stubs(t *testing.T, scripts map[string]string) string {
	t.Helper()
	bin := t.TempDir()
	for _, tool := range []string{"sed", "awk", "ls", "head", "cat", "touch"} {
		real, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("%s: %v", tool, err)
		}
		if err := os.Symlink(real, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

// pgConf makes <dir>/<version>/main/pg_hba.conf for each version.
func pgConf(t *testing.T, versions ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, v := range versions {
		if err := os.MkdirAll(filepath.Join(dir, v, "main"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, v, "main", "pg_hba.conf"), []byte("local all all peer\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// ensurePGAuth sources dev/services.sh and runs ensure_pg_auth, with STATE
// the stubs' directory.
func ensurePGAuth(t *testing.T, bin, conf, state string) (string, error) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	cmd := exec.Command(bash, "-c", `source ../services.sh && ensure_pg_auth`)
	cmd.Env = []string{"PATH=" + bin, "PG_CONF_DIR=" + conf, "STATE=" + state}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// psql answers once pg_ctlcluster (the reload) has run; pg_ctlcluster
// records its arguments in $STATE/ctl.
const (
	psql         = `[ -e "$STATE/reloaded" ] || exit 2`
	pgCtlcluster = `echo "$@" >"$STATE/ctl"; touch "$STATE/reloaded"`
)

func hba(t *testing.T, conf, version string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(conf, version, "main", "pg_hba.conf"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The trust line goes into the cluster pg_lsclusters lists on port 5432,
// not the lexically first version (15 here, on 5433).
func TestTrustGoesToTheClusterOnPort5432(t *testing.T) {
	conf := pgConf(t, "15", "16")
	bin := stubs(t, map[string]string{
		"psql":          psql,
		"pg_ctlcluster": pgCtlcluster,
		"pg_lsclusters": "echo '15 main 5433 online postgres /var/lib/postgresql/15/main -'\necho '16 main 5432 online postgres /var/lib/postgresql/16/main -'",
	})
	state := t.TempDir()
	if out, err := ensurePGAuth(t, bin, conf, state); err != nil {
		t.Fatalf("ensure_pg_auth: %v\n%s", err, out)
	}
	if ctl, _ := os.ReadFile(filepath.Join(state, "ctl")); strings.TrimSpace(string(ctl)) != "--skip-systemctl-redirect 16 main reload" {
		t.Errorf("pg_ctlcluster ran with %q, want 16 main reload", ctl)
	}
	if got := hba(t, conf, "16"); !strings.HasPrefix(got, "host all postgres 127.0.0.1/32 trust\n") {
		t.Errorf("16/main/pg_hba.conf (the cluster on 5432) = %q, want the trust line first", got)
	}
	if got := hba(t, conf, "15"); strings.Contains(got, "trust") {
		t.Errorf("15/main/pg_hba.conf (on 5433) was changed: %q", got)
	}
}

// Without pg_lsclusters, the first version under the directory, as before.
func TestWithoutPgLsclustersTheFirstVersion(t *testing.T) {
	conf := pgConf(t, "15")
	bin := stubs(t, map[string]string{"psql": psql, "pg_ctlcluster": pgCtlcluster})
	if out, err := ensurePGAuth(t, bin, conf, t.TempDir()); err != nil {
		t.Fatalf("ensure_pg_auth: %v\n%s", err, out)
	}
	if got := hba(t, conf, "15"); !strings.HasPrefix(got, "host all postgres 127.0.0.1/32 trust\n") {
		t.Errorf("15/main/pg_hba.conf = %q, want the trust line first", got)
	}
}

// Without psql, ensure_pg_auth stops and says so, rather than an ls error
// on a configuration directory that may not exist.
func TestAMissingPsqlIsNamed(t *testing.T) {
	bin := stubs(t, map[string]string{"pg_ctlcluster": pgCtlcluster})
	out, err := ensurePGAuth(t, bin, filepath.Join(t.TempDir(), "absent"), t.TempDir())
	if err == nil {
		t.Fatalf("ensure_pg_auth passed without psql:\n%s", out)
	}
	if !strings.Contains(out, "psql is missing") {
		t.Errorf("output %q does not say psql is missing", out)
	}
}

// A refused login with no cluster configuration found is named too.
func TestNoClusterFoundIsNamed(t *testing.T) {
	bin := stubs(t, map[string]string{"psql": psql, "pg_ctlcluster": pgCtlcluster})
	out, err := ensurePGAuth(t, bin, filepath.Join(t.TempDir(), "absent"), t.TempDir())
	if err == nil {
		t.Fatalf("ensure_pg_auth passed with no cluster:\n%s", out)
	}
	if !strings.Contains(out, "no Debian cluster's pg_hba.conf was found") {
		t.Errorf("output %q does not name the missing cluster", out)
	}
}

// When pg_lsclusters lists clusters but none on port 5432 (5432 is another
// PostgreSQL's, say a container's), no cluster's pg_hba.conf is touched: the
// lexically first version is only the guess where pg_lsclusters is absent.
func TestNoClusterOnPort5432ChangesNoCluster(t *testing.T) {
	conf := pgConf(t, "15")
	bin := stubs(t, map[string]string{
		"psql":          psql,
		"pg_ctlcluster": pgCtlcluster,
		"pg_lsclusters": "echo '15 main 5433 online postgres /var/lib/postgresql/15/main -'",
	})
	state := t.TempDir()
	out, err := ensurePGAuth(t, bin, conf, state)
	if err == nil {
		t.Fatalf("ensure_pg_auth passed with no cluster on 5432:\n%s", out)
	}
	if !strings.Contains(out, "no Debian cluster's pg_hba.conf was found") {
		t.Errorf("output %q does not name the missing cluster", out)
	}
	if got := hba(t, conf, "15"); strings.Contains(got, "trust") {
		t.Errorf("15/main/pg_hba.conf (on 5433) was changed: %q", got)
	}
	if ctl, err := os.ReadFile(filepath.Join(state, "ctl")); err == nil {
		t.Errorf("pg_ctlcluster ran (%q) for a cluster not on 5432", ctl)
	}
}
