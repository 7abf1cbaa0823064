package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// redisPool holds the Redis clients of one edge's plugin instances.
type redisPool struct {
	upstreams map[string]string // Options.Upstreams
	roots     *x509.CertPool    // Options.RedisRoots
	mu        sync.Mutex
	clients   map[string]*redis.Client
}

func newRedisPool(upstreams map[string]string, roots *x509.CertPool) *redisPool {
	return &redisPool{upstreams: upstreams, roots: roots, clients: map[string]*redis.Client{}}
}

// client returns the client for host:port (after the Upstreams rewrite),
// database, user and password (a password "" sends no AUTH, whatever the
// user, as in Kong), created on first use; go-redis
// connects lazily. With tlsName it dials TLS and verifies the certificate
// for that name against the pool's roots (nil: the system's).
func (p *redisPool) client(hostport string, db int, username, password, tlsName string) *redis.Client {
	if addr, ok := p.upstreams[hostport]; ok {
		hostport = addr
	}
	if password == "" {
		username = ""
	}
	key := fmt.Sprintf("%s/%d/%s/%s/%s", hostport, db, tlsName, username, password) // never printed
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.clients[key]
	if !ok {
		// Like Kong, the client sends nothing on connecting but its login:
		// no CLIENT SETINFO or MAINT_NOTIFICATIONS, which the user kong may
		// not run (Redis >= 7.2 logs each refused SETINFO in ACL LOG).
		opts := &redis.Options{Addr: hostport, DB: db, Username: username, Password: password, PoolSize: 4,
			DisableIdentity: true, MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}}
		if tlsName != "" {
			opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: tlsName, RootCAs: p.roots}
		}
		c = redis.NewClient(opts)
		p.clients[key] = c
	}
	return c
}

// close closes every client and reports their errors, joined.
func (p *redisPool) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for k, c := range p.clients {
		errs = append(errs, c.Close())
		delete(p.clients, k)
	}
	return errors.Join(errs...)
}

// isReference reports whether v is a Kong vault reference ({vault://...}).
func isReference(v string) bool {
	return strings.HasPrefix(v, "{vault://") && strings.HasSuffix(v, "}")
}

// envReference returns the environment variable a Kong env vault reference
// {vault://env/NAME} reads: NAME upper-cased with dashes as underscores
// (Kong's env vault convention). Any other vault is an error.
func envReference(v string) (string, error) {
	ref := strings.TrimSuffix(strings.TrimPrefix(v, "{vault://"), "}")
	name, ok := strings.CutPrefix(ref, "env/")
	if !ok || name == "" || strings.ContainsAny(name, "/?#") {
		return "", fmt.Errorf("vault reference %s: only {vault://env/NAME} is supported", v)
	}
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_")), nil
}

// resolve returns a field's value: a Kong env vault reference is read from
// its environment variable (envReference); anything else is returned as
// is. An unset variable is an error, as Kong refuses an unresolvable
// reference where it must have a value.
func resolve(v string, getenv func(string) string) (string, error) {
	if !isReference(v) {
		return v, nil
	}
	env, err := envReference(v)
	if err != nil {
		return "", err
	}
	val := getenv(env)
	if val == "" {
		return "", fmt.Errorf("vault reference %s: environment variable %s is not set", v, env)
	}
	return val, nil
}

// resolveReferenceable is resolve for a field Kong's schema marks
// referenceable (the rate-limiting plugin's redis.password): a reference
// whose variable is unset or empty is "", as Kong 3.9 resolves a reference
// it cannot (kong/db/schema/init.lua, resolve_reference: a log line, then
// ""), and its rate-limiting plugin then sends no AUTH.
func resolveReferenceable(v string, getenv func(string) string) (string, error) {
	if !isReference(v) {
		return v, nil
	}
	env, err := envReference(v)
	if err != nil {
		return "", err
	}
	return getenv(env), nil
}

// ctxKey keys what one plugin tells a later one about the request.
type ctxKey int

const identityKey ctxKey = 1

// identity is the consumer and credential the jwt plugin authenticated.
type identity struct {
	consumer, credential string
}

func withIdentity(r *http.Request, id identity) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), identityKey, id))
}

func identityOf(r *http.Request) (identity, bool) {
	id, ok := r.Context().Value(identityKey).(identity)
	return id, ok
}

// responseHook runs before(header, arg) once, just before the response
// headers are written, whoever writes them (a plugin's error or the
// upstream's answer), so what it sets is never duplicated by the upstream's
// headers. before is the plugin's, made once; arg is the request's value
// (a correlation id, an Origin), so a request allocates the hook alone and
// no closure.
type responseHook struct {
	http.ResponseWriter
	before func(h http.Header, arg string)
	arg    string
	wrote  bool
}

func (h *responseHook) WriteHeader(status int) {
	if !h.wrote {
		h.wrote = true
		h.before(h.Header(), h.arg)
	}
	h.ResponseWriter.WriteHeader(status)
}

func (h *responseHook) Write(b []byte) (int, error) {
	if !h.wrote {
		h.WriteHeader(http.StatusOK)
	}
	return h.ResponseWriter.Write(b)
}

func (h *responseHook) Flush() {
	if !h.wrote {
		h.WriteHeader(http.StatusOK)
	}
	if f, ok := h.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (h *responseHook) Unwrap() http.ResponseWriter { return h.ResponseWriter }
