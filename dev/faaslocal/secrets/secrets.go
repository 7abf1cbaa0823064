// Package secrets is the local runtime's secret store: one 0600 file per
// secret under <state>/secrets, and for each function a directory holding
// copies of only the secrets it declares (<state>/functions/<name>/secrets),
// which the function reads as faasd's /var/openfaas/secrets.
//
// Values never appear in errors or logs.
package secrets

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopfaas/shop/dev/faaslocal/durable"
	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/edkey"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/routes"
)

// Error codes of the store's classified errors.
const (
	codeInvalidName = "invalid_secret_name"
	codeMissing     = "secret_missing"
	codeNotFound    = "secret_not_found"
	codeExists      = "secret_exists"
	codeReserved    = "secret_reserved"
)

// reserved are the runtime's own secrets: the gateway API's credentials.
// faasd keeps them in /var/lib/faasd/secrets, apart from the functions'
// secrets, so the secret API never lists or changes them and no function
// can declare them; here they share the directory (the connectors read it
// as SECRETS_DIR), so the store keeps them apart: Names skips them, Create,
// Update, Delete and Check refuse them; Read and CreateMissing serve the
// runtime.
var reserved = map[string]bool{"basic-auth-user": true, "basic-auth-password": true}

func reservedName(n string) error {
	return fault.E(fault.Invalid, codeReserved, fmt.Sprintf(
		"secret %q is the gateway API's credential, not a function secret: change the file in the state "+
			"directory's secrets and restart faas-local", n))
}

// name is what a secret name may be (faas-provider's rule: a DNS-ish name
// that is also a safe file name).
var name = regexp.MustCompile(`^[a-zA-Z0-9]([-._a-zA-Z0-9]{0,251}[a-zA-Z0-9])?$`)

// validName reports whether n may name a secret. A name ending in tmpSuffix
// is refused: it is the temporary file a write of the name before it makes
// and renames away (until 2026-12-05 a secret "api.tmp" was accepted, and
// the next write of "api" deleted it).
func validName(n string) bool {
	return name.MatchString(n) && !strings.Contains(n, "..") && !strings.HasSuffix(n, tmpSuffix)
}

// syncDir flushes a directory's entries to disk (a variable for the tests
// that see Open sync the directories it creates).
var syncDir = durable.SyncDir

// tmpSuffix marks a value being written (durable.Replace); such files are
// never listed.
const tmpSuffix = durable.TempSuffix

// Store is the secret store of one state directory. Its methods are safe for
// concurrent use.
type Store struct {
	dir    string // one file per secret
	mounts string // <mounts>/<function>/secrets-<generation>

	mu  sync.Mutex    // serialises writes
	gen atomic.Uint64 // tells apart the generations MountDir names
}

// Open returns the store of stateDir, creating its directories (0700) and
// syncing the parent of each one it creates: a secret synced inside a
// directory whose name a crash of the host lost would be lost with it.
func Open(stateDir string) (*Store, error) {
	s := &Store{dir: filepath.Join(stateDir, "secrets"), mounts: filepath.Join(stateDir, "functions")}
	for _, d := range []string{s.dir, s.mounts} {
		if err := durable.MkdirPrivate(d, syncDir); err != nil {
			return nil, fmt.Errorf("secret store: %w", err)
		}
	}
	return s, nil
}

// Dir is the directory holding every secret, one file each (what connectors
// and the seed program read as SECRETS_DIR).
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(n string) string { return filepath.Join(s.dir, n) }

func invalidName(n string) error {
	return fault.E(fault.Invalid, codeInvalidName, fmt.Sprintf("secret name %q is not valid", n))
}

// Create stores a new secret; fault.Conflict when it exists, fault.Invalid
// for a bad name.
func (s *Store) Create(n string, value []byte) error {
	return s.put(n, value, true)
}

// Update replaces a secret's value; fault.NotFound when it does not exist.
// Running functions see the new value once they are redeployed, as on faasd.
func (s *Store) Update(n string, value []byte) error {
	return s.put(n, value, false)
}

func (s *Store) put(n string, value []byte, create bool) error {
	if !validName(n) {
		return invalidName(n)
	}
	if reserved[n] {
		return reservedName(n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := os.Stat(s.path(n))
	switch {
	case create && err == nil:
		return fault.E(fault.Conflict, codeExists, fmt.Sprintf("secret %q already exists", n))
	case !create && err != nil:
		return fault.E(fault.NotFound, codeNotFound, fmt.Sprintf("secret %q not found", n))
	}
	return writeFile(s.path(n), value)
}

// writeFile replaces p atomically (write to a temporary file, rename) and
// durably: the file's data, then its directory's entry, reach the disk
// before it returns, so a secret acknowledged (201, 202) or a credential
// made at the first run is still there, whole, after the host crashes.
func writeFile(p string, value []byte) error {
	err := durable.Replace(p, value)
	if err == nil {
		err = durable.SyncDir(filepath.Dir(p))
	}
	if err != nil {
		return fmt.Errorf("write secret: %w", err)
	}
	return nil
}

// Delete removes a secret; fault.NotFound when it does not exist. Functions
// that declared it keep their copy until they are redeployed.
func (s *Store) Delete(n string) error {
	if !validName(n) {
		return invalidName(n)
	}
	if reserved[n] {
		return reservedName(n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(s.path(n)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fault.E(fault.NotFound, codeNotFound, fmt.Sprintf("secret %q not found", n))
		}
		return fmt.Errorf("delete secret: %w", err)
	}
	return nil
}

// Names lists the stored secrets, sorted, except the reserved ones.
func (s *Store) Names() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	out := []string{}
	for _, e := range entries {
		if e.Type().IsRegular() && validName(e.Name()) && !reserved[e.Name()] && !strings.HasSuffix(e.Name(), tmpSuffix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Read returns a secret's value.
func (s *Store) Read(n string) ([]byte, error) {
	if !validName(n) {
		return nil, invalidName(n)
	}
	b, err := os.ReadFile(s.path(n))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fault.E(fault.NotFound, codeNotFound, fmt.Sprintf("secret %q not found", n))
	}
	return b, err
}

// Check reports, as one fault.Invalid error, every name that is not a
// stored secret or is reserved: a function may only declare secrets that
// exist and are its kind.
func (s *Store) Check(names []string) error {
	var errs []error
	for _, n := range names {
		if !validName(n) {
			errs = append(errs, invalidName(n))
			continue
		}
		if reserved[n] {
			errs = append(errs, reservedName(n))
			continue
		}
		if _, err := os.Stat(s.path(n)); err != nil {
			errs = append(errs, fault.E(fault.Invalid, codeMissing, fmt.Sprintf("secret %q does not exist, create it first", n)))
		}
	}
	return errors.Join(errs...)
}

// MountDir is a new directory (not created yet) for one generation of
// function's secrets: each deploy mounts into its own, so the replicas of
// the previous generation, still running while the new ones start, keep
// reading theirs (a function reads a secret lazily, on first use) until
// Release removes it.
func (s *Store) MountDir(function string) string {
	gen := strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatUint(s.gen.Add(1), 36)
	return filepath.Join(s.mounts, function, "secrets-"+gen)
}

// Mount fills dir, one of MountDir(function)'s, with copies of exactly the
// named secrets. A missing secret is a fault.Invalid error and creates
// nothing.
func (s *Store) Mount(function, dir string, names []string) error {
	if err := s.checkGeneration(function, dir); err != nil {
		return fmt.Errorf("mount secrets: %w", err)
	}
	if err := s.Check(names); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("mount secrets: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("mount secrets: %w", err)
	}
	for _, n := range names {
		b, err := os.ReadFile(s.path(n))
		if err != nil {
			return fmt.Errorf("mount secret %q: %w", n, err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			return fmt.Errorf("mount secret %q: %w", n, err)
		}
	}
	return nil
}

// Release removes dir, a generation of function's secrets (MountDir) that
// no replica uses any longer.
func (s *Store) Release(function, dir string) error {
	if err := s.checkGeneration(function, dir); err != nil {
		return fmt.Errorf("release secrets: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("release secrets: %w", err)
	}
	return nil
}

// checkGeneration refuses a function name that is a path, and a directory
// that is not one of the function's generations (MountDir).
func (s *Store) checkGeneration(function, dir string) error {
	if function == "" || strings.ContainsAny(function, `/\`) || strings.Contains(function, "..") {
		return fmt.Errorf("bad function name %q", function)
	}
	if dir != filepath.Clean(dir) || filepath.Dir(dir) != filepath.Join(s.mounts, function) || !strings.HasPrefix(filepath.Base(dir), "secrets-") {
		return fmt.Errorf("%q is not a secrets folder of %s", dir, function)
	}
	return nil
}

// Unmount removes function's state folder (the parent of MountDir, with
// the copies of its secrets), so nothing of a removed function stays on
// disk; a function without one is not an error.
func (s *Store) Unmount(function string) error {
	if function == "" || strings.ContainsAny(function, `/\`) || strings.Contains(function, "..") {
		return fmt.Errorf("unmount secrets: bad function name %q", function)
	}
	if err := os.RemoveAll(filepath.Join(s.mounts, function)); err != nil {
		return fmt.Errorf("unmount secrets: %w", err)
	}
	return nil
}

// CreateMissing stores each of values whose secret does not exist yet;
// existing secrets keep their value (so tokens issued before a restart stay
// valid).
func (s *Store) CreateMissing(values map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	skip := map[string]bool{}
	for _, pair := range keyPairs {
		_, err0 := os.Stat(s.path(pair[0]))
		_, err1 := os.Stat(s.path(pair[1]))
		if (err0 == nil) != (err1 == nil) {
			// One half of a key pair alone: a new other half would not match it.
			errs = append(errs, fmt.Errorf("secrets %s and %s are a key pair but only one exists in %s: delete it to have both regenerated",
				pair[0], pair[1], s.dir))
			skip[pair[0]], skip[pair[1]] = true, true
		}
	}
	for _, n := range slices.Sorted(maps.Keys(values)) {
		if skip[n] {
			continue
		}
		if !validName(n) {
			errs = append(errs, invalidName(n))
			continue
		}
		if _, err := os.Stat(s.path(n)); err == nil {
			continue
		}
		if err := writeFile(s.path(n), []byte(values[n])); err != nil {
			errs = append(errs, fmt.Errorf("secret %s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// keyPairs are the secrets Development makes as matching private and public
// halves: CreateMissing writes both or neither.
var keyPairs = [][2]string{{"jwt-signing-key", "jwt-verify-key"}, {"event-signing-key", "event-verify-key"}}

// Development returns the secrets a development stack needs, with fresh
// random keys: the gateway API's basic-auth-user (admin) and
// basic-auth-password, as faasd generates them on install; login-user's
// jwt-signing-key and the verifiers' and edge's matching jwt-verify-key (an
// Ed25519 pair, internal/auth); one internal credential per internal caller
// of routes.Table (internal-token-<caller>) and the verifier
// internal-callers that knows them all; the outbox relay's
// event-signing-key and the consumers' matching event-verify-key (an Ed25519
// pair, internal/events); the seeded admin's
// admin-email and admin-password, and the database passwords (each
// service's db-password-<service>, the relay's db-password-relay and the
// public readers' db-password-catalog-reader and
// db-password-inventory-reader),
// meili-key, meili-search-key, redis-password and smtp-password empty (PostgreSQL trusts local
// connections, no Meilisearch runs, the machine's Redis has no requirepass
// and no SMTP server needs a login; functions declare them for production).
// A developer whose Redis requires a password writes it to the state
// directory's redis-password (the functions use it) and, for the local
// edge's rate limits, which log in as kong.yml's ACL user kong, that user's
// password to redis-kong-password (absent by default: the edge sends no
// AUTH); docker-compose.yml's rules for kong suffice (the edge counts with
// EVAL on ratelimit:* keys). cmd/faas-local, runtimetest and chaos store them with
// CreateDevelopment before starting a runtime; the runtime itself never
// writes a secret on its own.
//
// A state directory written before the access tokens were asymmetric holds
// jwt-secret and no jwt-signing-key: CreateMissing adds the pair on the next
// start (tokens signed with the old jwt-secret stop verifying; they lived 15
// minutes) and leaves the unused jwt-secret file alone.
func Development() map[string]string {
	signing, verify := keyPair()
	jwtSigning, jwtVerify := keyPair()
	out := map[string]string{
		"basic-auth-user":       "admin",
		"basic-auth-password":   randomKey(24),
		"jwt-signing-key":       jwtSigning,
		"jwt-verify-key":        jwtVerify,
		"event-signing-key":     signing,
		"event-verify-key":      verify,
		"admin-email":           "admin@example.com",
		"admin-password":        "admin-dev-password",
		"db-password-users":     "",
		"db-password-catalog":   "",
		"db-password-orders":    "",
		"db-password-inventory": "",
		"db-password-payments":  "",
		"db-password-relay":     "",
		// The readers' (postgres.ReaderPasswordSecret): unused too, as
		// env/development.yml sets no <SERVICE>_READER_DATABASE_URL and
		// the readers log in as the writers do.
		"db-password-catalog-reader":   "",
		"db-password-inventory-reader": "",
		"meili-key":                    "",
		"meili-search-key":             "",
		"redis-password":               "",
		"smtp-password":                "",
	}
	var lines []string
	for _, caller := range routes.AllCallers() {
		cred, err := auth.NewCredential(caller)
		if err != nil {
			continue // no randomness: the caller's function reports the missing secret
		}
		line, _ := auth.VerifierLine(cred)
		out[auth.CredentialSecret(caller)] = cred
		lines = append(lines, line)
	}
	out[auth.CallersSecret] = strings.Join(lines, "\n") + "\n"
	return out
}

// CreateDevelopment stores the Development secrets that do not exist yet
// (CreateMissing), then adds to internal-callers the line of every caller
// credential it does not list yet. So a state directory from before
// per-caller credentials (one shared internal-token) upgrades on the next
// start, and a caller added to routes.Table later is trusted at once;
// existing credentials and lines are kept (rotation is by hand:
// docs/security.md). The old internal-token file is left alone; nothing
// reads it.
func (s *Store) CreateDevelopment() error {
	if err := s.CreateMissing(Development()); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	text, err := os.ReadFile(s.path(auth.CallersSecret))
	if err != nil {
		return fmt.Errorf("secret %s: %w", auth.CallersSecret, err)
	}
	have := string(text)
	listed := strings.Split(have, "\n")
	var add []string
	for _, caller := range routes.AllCallers() {
		cred, err := os.ReadFile(s.path(auth.CredentialSecret(caller)))
		if err != nil {
			return fmt.Errorf("secret %s: %w", auth.CredentialSecret(caller), err)
		}
		line, err := auth.VerifierLine(strings.TrimSpace(string(cred)))
		if err != nil {
			return fmt.Errorf("secret %s: %w", auth.CredentialSecret(caller), err)
		}
		if !slices.Contains(listed, line) {
			add = append(add, line)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if have != "" && !strings.HasSuffix(have, "\n") {
		have += "\n"
	}
	if err := writeFile(s.path(auth.CallersSecret), []byte(have+strings.Join(add, "\n")+"\n")); err != nil {
		return fmt.Errorf("secret %s: %w", auth.CallersSecret, err)
	}
	return nil
}

// keyPair returns a new Ed25519 pair as PEM private and public keys (both
// empty if the system has no randomness, which the function holding the
// private key then reports at start-up).
func keyPair() (private, public string) {
	private, public, err := edkey.New()
	if err != nil {
		return "", ""
	}
	return private, public
}

// randomKey is n random bytes, base64-encoded.
func randomKey(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
