package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/users"
	"github.com/shopfaas/shop/internal/users/usersdb"
)

// env is a test environment: a fresh users database (created by the seed
// itself through DATABASE_CREATE) and an empty secrets directory.
func env(t *testing.T) (map[string]string, string) {
	t.Helper()
	dir := t.TempDir()
	return map[string]string{
		"USERS_DATABASE_URL": pgtest.NewDatabase(t),
		config.SecretsDirEnv: dir,
		"SEED_DEMO_CATALOG":  "false", // demo_test.go covers that step
	}, dir
}

func writeSecret(t *testing.T, dir, name, value string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func seed(t *testing.T, vars map[string]string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), args, config.Env(vars), &out)
	return out.String(), err
}

func store(t *testing.T, url string) *usersdb.Store {
	t.Helper()
	pool, err := postgres.Open(context.Background(), postgres.Config{URL: url, Migrations: usersdb.Migrations(), MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return usersdb.New(pool)
}

func checkAdmin(t *testing.T, s *usersdb.Store, email, password string) users.User {
	t.Helper()
	u, err := s.Authenticate(context.Background(), users.Login{Email: email, Password: password})
	if err != nil {
		t.Fatalf("admin %s cannot log in: %v", email, err)
	}
	if u.Role != users.RoleAdmin {
		t.Fatalf("role = %q, want admin", u.Role)
	}
	return u
}

func TestSeedAdminFromSecretsIsIdempotent(t *testing.T) {
	vars, dir := env(t)
	writeSecret(t, dir, "admin-email", "Root@Example.com")
	writeSecret(t, dir, "admin-password", "first-password")
	out, err := seed(t, vars)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(out), "root@example.com") || strings.Contains(out, "first-password") {
		t.Fatalf("seed logged a secret: %s", out)
	}
	s := store(t, vars["USERS_DATABASE_URL"])
	first := checkAdmin(t, s, "root@example.com", "first-password")

	if _, err := seed(t, vars); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if again := checkAdmin(t, s, "root@example.com", "first-password"); again.ID != first.ID {
		t.Fatalf("second run replaced the admin: %s, then %s", first.ID, again.ID)
	}

	// A rotated password secret is applied on the next run.
	writeSecret(t, dir, "admin-password", "second-password")
	if _, err := seed(t, vars); err != nil {
		t.Fatal(err)
	}
	checkAdmin(t, s, "root@example.com", "second-password")
	pending, err := s.PendingEvents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 {
		t.Fatalf("%d registration events after three runs, want 1", len(pending))
	}
}

// The seed does not adopt a customer account that registered admin-email
// before it ran (its registrant's tokens would be the admin account's): it
// refuses, naming ADMIN_PROMOTE, and with ADMIN_PROMOTE=true it promotes it.
func TestSeedRefusesToAdoptACustomerUnlessAsked(t *testing.T) {
	vars, dir := env(t)
	writeSecret(t, dir, "admin-email", "root@example.com")
	writeSecret(t, dir, "admin-password", "admin-password")
	s := store(t, vars["USERS_DATABASE_URL"])
	reg, err := users.NewRegistration("root@example.com", "squatter-password", "Squatter")
	if err != nil {
		t.Fatal(err)
	}
	squatter, err := s.Register(context.Background(), reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seed(t, vars); err == nil || !strings.Contains(err.Error(), "ADMIN_PROMOTE") {
		t.Fatalf("seed over a customer's account: %v; want a refusal naming ADMIN_PROMOTE", err)
	}
	if u, err := s.Authenticate(context.Background(), users.Login{Email: "root@example.com", Password: "squatter-password"}); err != nil || u.Role != users.RoleCustomer {
		t.Fatalf("after the refusal: %+v %v; want the account left a customer", u, err)
	}
	vars["ADMIN_PROMOTE"] = "true"
	if _, err := seed(t, vars); err != nil {
		t.Fatal(err)
	}
	if u := checkAdmin(t, s, "root@example.com", "admin-password"); u.ID != squatter.ID {
		t.Fatalf("promoted %s, want the existing account %s", u.ID, squatter.ID)
	}
}

func TestSeedAdminDevelopmentDefaults(t *testing.T) {
	vars, _ := env(t)
	vars["SHOP_ENV"] = "development"
	if _, err := seed(t, vars); err != nil {
		t.Fatal(err)
	}
	checkAdmin(t, store(t, vars["USERS_DATABASE_URL"]), devAdminEmail, devAdminPassword)
}

func TestSeedRefusesWithoutSecretsInProduction(t *testing.T) {
	vars, _ := env(t)
	_, err := seed(t, vars)
	if err == nil || !strings.Contains(err.Error(), "admin-email") || !strings.Contains(err.Error(), "admin-password") {
		t.Fatalf("err = %v, want both missing secrets reported", err)
	}
}

func TestSeedRefusesWeakAdminPassword(t *testing.T) {
	vars, dir := env(t)
	writeSecret(t, dir, "admin-email", "root@example.com")
	writeSecret(t, dir, "admin-password", "short")
	if _, err := seed(t, vars); err == nil || !strings.Contains(err.Error(), "at least 8") {
		t.Fatalf("err = %v, want the short password refused", err)
	}
}

func TestSeedEnvFile(t *testing.T) {
	vars, _ := env(t)
	file := filepath.Join(t.TempDir(), "development.yml")
	content := "environment:\n  SHOP_ENV: development\n  USERS_DATABASE_URL: postgres://nobody@127.0.0.1:1/none\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	// The process environment wins (USERS_DATABASE_URL); the file fills the gaps (SHOP_ENV).
	if _, err := seed(t, vars, "-env-file", file); err != nil {
		t.Fatal(err)
	}
	checkAdmin(t, store(t, vars["USERS_DATABASE_URL"]), devAdminEmail, devAdminPassword)
	if _, err := seed(t, vars, "-env-file", filepath.Join(t.TempDir(), "missing.yml")); err == nil {
		t.Fatal("a missing env file was accepted")
	}
}

// An argument that is not a flag (an env file named without -env-file) is
// refused before any step runs: the seed used to ignore it and seed from
// the process environment alone, defaults included, as if it had been read.
func TestSeedRefusesArgumentsThatAreNotFlags(t *testing.T) {
	vars, dir := env(t)
	writeSecret(t, dir, "admin-email", "root@example.com")
	writeSecret(t, dir, "admin-password", "a-long-enough-password")
	file := filepath.Join(t.TempDir(), "development.yml")
	if err := os.WriteFile(file, []byte("environment:\n  ADMIN_NAME: Root\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{file}, {"-env-file", file, "extra"}} {
		if _, err := seed(t, vars, args...); err == nil || !strings.Contains(err.Error(), "-env-file") {
			t.Errorf("seed %q: err = %v, want the argument refused, naming -env-file", args, err)
		}
	}
	if _, err := store(t, vars["USERS_DATABASE_URL"]).Authenticate(context.Background(),
		users.Login{Email: "root@example.com", Password: "a-long-enough-password"}); err == nil {
		t.Error("the admin was seeded though the arguments were refused")
	}
}

// -h prints the usage to stdout and ends the seed without an error and
// without running a step: it used to exit 1 with "flag: help requested".
func TestSeedHelpPrintsTheUsageAndSeedsNothing(t *testing.T) {
	vars, dir := env(t)
	writeSecret(t, dir, "admin-email", "root@example.com")
	writeSecret(t, dir, "admin-password", "a-long-enough-password")
	out, err := seed(t, vars, "-h")
	if err != nil {
		t.Fatalf("seed -h: err = %v, want nil", err)
	}
	if !strings.Contains(out, "-env-file") {
		t.Errorf("seed -h printed %q, want the usage naming -env-file", out)
	}
	if _, err := store(t, vars["USERS_DATABASE_URL"]).Authenticate(context.Background(),
		users.Login{Email: "root@example.com", Password: "a-long-enough-password"}); err == nil {
		t.Error("seed -h seeded the admin")
	}
}
