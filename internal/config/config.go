// Package config reads a process's configuration from an injected environment
// and from OpenFaaS secret files, collecting every problem before failing so an
// operator sees them all at once.
package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultSecretsDir is where OpenFaaS (faasd and Kubernetes) mounts secrets.
const DefaultSecretsDir = "/var/openfaas/secrets"

// SecretsDirEnv names the variable that overrides DefaultSecretsDir; the local
// runtime sets it for every function process.
const SecretsDirEnv = "SECRETS_DIR"

// Reader reads typed values and collects the problems it meets. Call Err once
// after reading everything.
type Reader struct {
	getenv     func(string) string
	secretsDir string
	errs       []error
}

// New reads from getenv (os.Getenv in production, a map in tests).
func New(getenv func(string) string) *Reader {
	dir := getenv(SecretsDirEnv)
	if dir == "" {
		dir = DefaultSecretsDir
	}
	return &Reader{getenv: getenv, secretsDir: dir}
}

// Fresh returns a new Reader over c's environment without c's problems: a
// build that failed and is tried again reads the environment anew (a variable
// or secret file may have appeared since) instead of reporting the old errors.
func (c *Reader) Fresh() *Reader { return New(c.getenv) }

// Env returns a getenv function backed by the map, for tests.
func Env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// Err reports every problem met so far, joined, or nil.
func (c *Reader) Err() error { return errors.Join(c.errs...) }

func (c *Reader) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}

// Fail records a problem with the variable name that a caller found by its
// own validation (e.g. a list whose entries only the caller can parse), so it
// is reported with every other problem by Err.
func (c *Reader) Fail(name string, err error) { c.fail("%s: %w", name, err) }

// String returns the variable or def when it is unset.
func (c *Reader) String(name, def string) string {
	if v := strings.TrimSpace(c.getenv(name)); v != "" {
		return v
	}
	return def
}

// Required returns the variable and records a problem when it is unset.
func (c *Reader) Required(name string) string {
	v := c.String(name, "")
	if v == "" {
		c.fail("%s is required", name)
	}
	return v
}

// Int returns the variable parsed as an integer within [min, max].
func (c *Reader) Int(name string, def, min, max int) int {
	raw := c.String(name, "")
	if raw == "" {
		return def
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < min || n > max {
		c.fail("%s=%q must be an integer from %d to %d", name, raw, min, max)
		return def
	}
	return n
}

// Bool returns the variable parsed as a boolean.
func (c *Reader) Bool(name string, def bool) bool {
	raw := c.String(name, "")
	if raw == "" {
		return def
	}
	b, err := strconv.ParseBool(raw)
	if err != nil {
		c.fail("%s=%q must be true or false", name, raw)
		return def
	}
	return b
}

// Duration returns the variable parsed as a duration; a bare number is seconds,
// as in the OpenFaaS watchdog's variables. A value past the longest
// time.Duration (about 292 years) is a problem, as is one that is not a
// duration ("NaN", "Inf"): until 2026-12-06 a bare number of seconds past it
// wrapped around, 36028797018967568 (2^55 + 3600) reading as one hour.
func (c *Reader) Duration(name string, def time.Duration) time.Duration {
	raw := c.String(name, "")
	if raw == "" {
		return def
	}
	if n, err := strconv.ParseInt(raw, 10, 64); (err == nil || errors.Is(err, strconv.ErrRange)) && n >= 0 {
		if err != nil || n > maxSeconds {
			c.fail("%s=%q is longer than the longest duration, %d seconds", name, raw, maxSeconds)
			return def
		}
		return time.Duration(n) * time.Second
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d < 0 {
		c.fail("%s=%q must be a duration such as 10s", name, raw)
		return def
	}
	return d
}

// maxSeconds is the longest duration in whole seconds.
const maxSeconds = int64(math.MaxInt64 / time.Second)

// Secret reads the secret file name from the secrets directory. Development
// defaults are used only when dev is true; otherwise a missing secret is a
// problem, so production refuses to start without real secrets.
func (c *Reader) Secret(name, devDefault string, dev bool) string {
	b, err := os.ReadFile(filepath.Join(c.secretsDir, name))
	if err == nil {
		if v := strings.TrimSpace(string(b)); v != "" {
			return v
		}
	}
	if dev && devDefault != "" {
		return devDefault
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		c.fail("secret %s: %v", name, err)
	} else {
		c.fail("secret %s is missing from %s", name, c.secretsDir)
	}
	return ""
}

// Dev reports whether the process runs in development mode (SHOP_ENV=development),
// where development secrets have defaults.
func (c *Reader) Dev() bool { return c.String("SHOP_ENV", "production") == "development" }

// GatewayBasicAuth reads the OpenFaaS gateway API's credentials as the
// OpenFaaS connectors do: when basic_auth is true (as on faasd and under
// faas-local), the secrets basic-auth-user and basic-auth-password are
// required; otherwise there are none ("", ""). They come only from files,
// never from environment values.
func (c *Reader) GatewayBasicAuth() (user, password string) {
	if !c.Bool("basic_auth", false) {
		return "", ""
	}
	return c.Secret("basic-auth-user", "", false), c.Secret("basic-auth-password", "", false)
}

// OptionalSecret reads the secret file name, or "" when it is missing or
// empty; its absence is never a problem (e.g. db-password-users where PostgreSQL
// trusts local connections). A file that exists but cannot be read (its
// owner or mode wrong for this process) is a problem: taken as absent, the
// process would connect without the password and fail at every attempt
// instead of naming the file at start.
func (c *Reader) OptionalSecret(name string) string {
	b, err := os.ReadFile(filepath.Join(c.secretsDir, name))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		c.fail("secret %s: %v", name, err)
		return ""
	}
	return strings.TrimSpace(string(b))
}
