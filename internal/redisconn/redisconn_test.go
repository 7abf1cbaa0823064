package redisconn_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/shopfaas/shop/internal/cache"
	"github.com/shopfaas/shop/internal/cart/cartredis"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/ratelimit"
	"github.com/shopfaas/shop/internal/redisconn"
	"github.com/shopfaas/shop/internal/redisconn/redisconntest"
)

// The password comes from the redis-password secret file only: absent or
// blank, none is sent; a file that exists and cannot be read is a problem
// named at start; an environment value of the same name is never read.
func TestThePasswordComesFromTheSecretFileOnly(t *testing.T) {
	tests := []struct {
		name    string
		file    string // the secret's content; "<dir>" makes it unreadable, "" leaves it out
		want    string
		wantErr string
	}{
		{"absent", "", "", ""},
		{"present", "s3cret\n", "s3cret", ""},
		{"blank", "  \n", "", ""},
		{"unreadable", "<dir>", "", "secret redis-password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, redisconn.PasswordSecret)
			switch tt.file {
			case "":
			case "<dir>": // reading a directory fails, whoever runs the test (root reads any file)
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			default:
				if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c := config.New(config.Env(map[string]string{config.SecretsDirEnv: dir, "REDIS_ADDR": "redis:6379",
				"redis-password": "from-env", "REDIS_PASSWORD": "from-env"}))
			got := redisconn.ConfigFrom(c)
			if got.Addr != "redis:6379" || got.Password != tt.want {
				t.Errorf("ConfigFrom = {%q, %q}, want {redis:6379, %q}", got.Addr, got.Password, tt.want)
			}
			err := c.Err()
			if tt.wantErr == "" && err != nil {
				t.Errorf("Err() = %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Err() = %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
	c := config.New(config.Env(map[string]string{config.SecretsDirEnv: t.TempDir()}))
	redisconn.ConfigFrom(c)
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "REDIS_ADDR is required") {
		t.Errorf("without REDIS_ADDR: Err() = %v", err)
	}
}

// A Config printed or logged, alone or inside a caller's config, never shows
// the password.
func TestAConfigNeverPrintsItsPassword(t *testing.T) {
	const pw = "hunter2-do-not-print"
	cfg := redisconn.Config{Addr: "redis:6379", Password: pw}
	outer := struct {
		Redis  redisconn.Config
		Prefix string
	}{cfg, "cart:"}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("redis", "config", cfg)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("redis", "config", cfg)
	for _, text := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%v", outer),
		fmt.Sprintf("%+v", outer), fmt.Sprintf("%#v", outer), logged.String()} {
		if strings.Contains(text, pw) {
			t.Errorf("printed with its password: %s", text)
		}
		if !strings.Contains(text, "redis:6379") {
			t.Errorf("printed without its address: %s", text)
		}
	}
}

// Options log in with the secret's password: a Redis that requires it
// answers a client built from the secret, and refuses one built without it
// (NOAUTH), so a deployment with AUTH on Redis can run the shop.
func TestOptionsLogInWithTheSecret(t *testing.T) {
	addr := redisconntest.Server(t, "pwOfTheTest")
	ctx := context.Background()
	ping := func(secret string) error {
		rdb := redis.NewClient(redisconn.Options(redisconntest.FromSecret(t, addr, secret, redisconn.ConfigFrom)))
		defer rdb.Close()
		return rdb.Ping(ctx).Err()
	}
	if err := ping(""); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("without the secret: PING = %v, want NOAUTH", err)
	}
	if err := ping("pwOfTheTest\n"); err != nil {
		t.Errorf("with the secret: PING = %v", err)
	}
}

// Open fails when Redis refuses the login or PING (a wrong or missing
// secret, an ACL that denies the user PING), naming the secret and not the
// password, so a function's build fails on a misconfiguration (as it does on
// a certificate that fails verification:
// TestACertificateThatFailsVerificationFailsTheBuild); a Redis that cannot be
// reached is no error (its calls meet the outage as they come).
func TestOpenFailsOnARefusedLoginNotOnAnOutage(t *testing.T) {
	const password = "openTestPassword"
	addr := redisconntest.Server(t, password)
	denied := redisconntest.Server(t, password)
	redisconntest.SetDefaultUser(t, denied, password, "-ping")
	for _, tt := range []struct {
		name, addr, secret, refusal string // refusal: "" when Open must succeed
	}{
		{"right password", addr, password, ""},
		{"wrong password", addr, "wrongPassword", "WRONGPASS"},
		{"no password", addr, "", "NOAUTH"},
		{"PING denied", denied, password, "NOPERM"},
		{"unreachable", "127.0.0.1:1", password, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rdb, err := redisconn.Open(context.Background(), redisconn.Options(redisconntest.FromSecret(t, tt.addr, tt.secret, redisconn.ConfigFrom)))
			if tt.refusal == "" {
				if err != nil {
					t.Fatalf("Open = %v, want a client", err)
				}
				_ = rdb.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.refusal) || !strings.Contains(err.Error(), "redis-password") ||
				strings.Contains(err.Error(), tt.secret) && tt.secret != "" {
				t.Errorf("Open = %v, want an error naming %s and the redis-password secret, not the password", err, tt.refusal)
			}
		})
	}
}

// The guide and the runbook quote, word for word, each refusal a function
// logs (Refused), as the error of the build that Open fails: an operator
// searches them for the line in the log, and NOPERM's and a failed
// certificate's differ from the login's.
func TestTheDocsQuoteEveryRefusal(t *testing.T) {
	const password = "quoteTestPassword"
	addr := redisconntest.Server(t, password)
	denied := redisconntest.Server(t, password)
	redisconntest.SetDefaultUser(t, denied, password, "-ping")
	tlsAddr, _ := redisconntest.TLSServer(t, password)
	var refusals []string
	for _, cfg := range []redisconn.Config{
		{Addr: addr, Password: "wrongPassword"},
		{Addr: denied, Password: password},
		{Addr: tlsAddr, Password: password, TLS: true, CA: redisconntest.CA(t)},
	} {
		rdb, err := redisconn.Open(context.Background(), redisconn.Options(cfg))
		if err == nil {
			_ = rdb.Close()
			t.Fatalf("Open on %s built, want a refusal", cfg)
		}
		if !redisconn.Misconfigured(err) || !strings.Contains(err.Error(), redisconn.Refused(err)) {
			t.Fatalf("Open on %s = %v, want a refusal worded by Refused", cfg, err)
		}
		refusals = append(refusals, redisconn.Refused(err))
	}
	for _, doc := range []string{"docs/deploy-faasd.md", "docs/runbooks/function-errors.md"} {
		b, err := os.ReadFile(filepath.Join("..", "..", doc))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(strings.Fields(string(b)), " ") // quotes wrap across lines
		for _, r := range refusals {
			if !strings.Contains(text, "`"+r+"`") {
				t.Errorf("%s does not quote %q", doc, r)
			}
		}
	}
}

// The least-privilege ACL docs/security.md gives for the functions' Redis
// user (applied here to the default user, as the functions log in as it)
// runs every call of the carts, the limits and the product cache, and the
// login check: a command a client sends, or a script runs, that the rules
// leave out would answer NOPERM (a build that fails, carts and limits 503).
func TestTheDocumentedACLRunsEveryCall(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "security.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("`(resetkeys [^`]+)`").FindSubmatch(b)
	if m == nil {
		t.Fatal("docs/security.md gives no ACL rules for the functions' user (`resetkeys …`)")
	}
	const password = "aclTestPassword"
	addr := redisconntest.Server(t, password)
	ctx := context.Background()
	// Before any client of the test connects (SetDefaultUser's CLIENT KILL
	// would be denied by these rules).
	admin := redis.NewClient(&redis.Options{Addr: addr, Password: password, MaxRetries: -1})
	args := []any{"ACL", "SETUSER", "default"}
	for _, r := range strings.Fields(string(m[1])) {
		args = append(args, r)
	}
	if err := admin.Do(ctx, args...).Err(); err != nil {
		t.Fatalf("ACL SETUSER default %s: %v", m[1], err)
	}
	_ = admin.Close()
	rc := redisconn.Config{Addr: addr, Password: password}

	rdb, err := cartredis.NewClient(ctx, rc) // the login check: PING
	if err != nil {
		t.Fatalf("the login check: %v", err)
	}
	defer rdb.Close()
	carts := cartredis.New(rdb, cartredis.Config{Redis: rc, KeyPrefix: "cart:", TTL: time.Hour})
	user, order, product := uuid.New(), uuid.New(), uuid.New()
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	check("cart SetLine", carts.SetLine(ctx, user, product, 2, 50))
	check("cart SetLineIfUnchanged", carts.SetLineIfUnchanged(ctx, user, uuid.New(), 1, 50, "USD", []uuid.UUID{product}))
	lines, err := carts.Lines(ctx, user)
	check("cart Lines", err)
	_, err = carts.TTL(ctx, user)
	check("cart TTL", err)
	check("cart RemoveOrdered", carts.RemoveOrdered(ctx, user, order, lines, time.Minute))
	check("cart ForgetRemoval", carts.ForgetRemoval(ctx, order))
	check("cart SetLine", carts.SetLine(ctx, user, product, 1, 50))
	check("cart Remove", carts.Remove(ctx, user, product))
	check("cart Clear", carts.Clear(ctx, user))

	for _, prefix := range []string{"shop:ratelimit:create-order:", "shop:ratelimit:login-user:shop_users:"} {
		limit, err := ratelimit.New(rdb, ratelimit.Config{Prefix: prefix, Limit: 5}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		check("limit Allow", limit.Allow(ctx, "subject"))
	}
	// login-user refunds a login that checked no password: with a limit of
	// one, a second count passes only if the refund ran (a failed one is
	// only logged).
	login, err := ratelimit.New(rdb, ratelimit.Config{Prefix: "shop:ratelimit:login-user:shop_users:", Limit: 1},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	check("login limit Allow", login.Allow(ctx, "refunded"))
	login.Refund(ctx, "refunded")
	check("login limit Allow after Refund", login.Allow(ctx, "refunded"))

	ch, err := cache.New(cache.Config{Redis: rc, Prefix: "shop:catalog:product:"})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	_, err = ch.Put(ctx, "p", 1, []byte("v1"))
	check("cache Put", err)
	_, _, _, err = ch.Get(ctx, "p")
	check("cache Get", err)
	check("cache Invalidate", ch.Invalidate(ctx, "p", 2))
}

// recordingConn keeps every byte a client writes to Redis.
type recordingConn struct {
	net.Conn
	mu  *sync.Mutex
	out *bytes.Buffer
}

func (c recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// A client with Options sends no CLIENT SETINFO (nor CLIENT
// MAINT_NOTIFICATIONS) when it connects: go-redis would send LIB-NAME and
// LIB-VER on every new connection, which Redis
// >= 7.2 refuses every shop user but admin (NOPERM, ignored by go-redis)
// and records in its ACL LOG, drowning the refusals an operator looks for
// there (docs/runbooks/datastores.md). The bytes the client writes are read
// here, as this machine's Redis 7.0 knows no SETINFO and would log nothing.
func TestTheClientSendsNoClientSetinfo(t *testing.T) {
	const password = "setinfoTestPassword"
	addr := redisconntest.Server(t, password)
	var mu sync.Mutex
	var out bytes.Buffer
	opts := redisconn.Options(redisconn.Config{Addr: addr, Password: password})
	opts.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return recordingConn{Conn: c, mu: &mu, out: &out}, nil
	}
	rdb, err := redisconn.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if err := rdb.Set(context.Background(), "identity-test", "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	sent := strings.ToUpper(out.String())
	if !strings.Contains(sent, "PING") || !strings.Contains(sent, "SET") {
		t.Fatalf("the recorder saw not the client's PING and SET: %q", sent)
	}
	for _, sub := range []string{"SETINFO", "MAINT_NOTIFICATIONS"} {
		if strings.Contains(sent, "\r\n"+sub+"\r\n") {
			t.Errorf("the client sent CLIENT %s: %q", sub, sent)
		}
	}
}
