package ordersenv

import (
	"context"
	"log/slog"
	"maps"
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/config/configtest"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// Load names every missing setting at once, builds every dependency asked
// for, reads no secret it was not asked for, and refuses a RECOVER_AFTER
// not above a request's longest drive (saga.LongestDrive), a GIVE_UP_AFTER not above RECOVER_AFTER or above
// 20h, and a hold that does not outlive the saga.
func TestLoad(t *testing.T) {
	load := func(needs Needs) func(*config.Reader) (*Deps, error) {
		return func(c *config.Reader) (*Deps, error) { return Load(context.Background(), c, slog.Default(), needs) }
	}
	db := pgtest.NewDatabase(t)
	env := map[string]string{"ORDERS_DATABASE_URL": db, "GATEWAY_URL": "http://127.0.0.1:1", "REDIS_ADDR": "127.0.0.1:6379",
		"RECOVER_AFTER": "90s"}
	configtest.Run(t, Case{
		Name: "saga", Load: load(Needs{Tokens: true, Saga: true, Caller: "recover-orders", Internal: true}),
		Missing: []string{"ORDERS_DATABASE_URL", "jwt-verify-key", "internal-token-recover-orders", "internal-callers", "GATEWAY_URL", "REDIS_ADDR"},
		Env:     env, Secrets: configtest.CallerSecrets,
		Check: func(t *testing.T, e *Deps) {
			if e.Saga == nil || e.Store == nil || e.Tokens == nil || e.Internal == nil {
				t.Fatalf("env %+v", e)
			}
		},
	}, Case{
		Name: "nothing optional", Load: load(Needs{}),
		Env: map[string]string{"ORDERS_DATABASE_URL": db},
		Check: func(t *testing.T, e *Deps) {
			if e.Store == nil || e.Tokens != nil || e.Saga != nil || e.Internal != nil {
				t.Errorf("env %+v: want the store only", e)
			}
		},
	})
	// Below the saga timeout, or above it but within a drive's longest
	// (SAGA_TIMEOUT 20s + 7s): recovery would race live requests.
	for _, ra := range []string{"5s", "25s", "27s"} {
		env["RECOVER_AFTER"] = ra
		if _, err := load(Needs{Tokens: true, Saga: true, Caller: "create-order"})(configtest.Reader(t, env, configtest.CallerSecrets)); err == nil ||
			!strings.Contains(err.Error(), "RecoverAfter ("+ra+")") || !strings.Contains(err.Error(), "27s") {
			t.Errorf("RECOVER_AFTER %s: %v, want it refused naming it and the longest drive 27s", ra, err)
		}
	}
	env["RECOVER_AFTER"] = "90s"
	// Recovery would give up on an order before it first drove it, or
	// refund it after the processor forgot its charge's key.
	for _, giveUp := range []string{"90s", "21h"} {
		env["GIVE_UP_AFTER"] = giveUp
		if _, err := load(Needs{Tokens: true, Saga: true, Caller: "recover-orders"})(configtest.Reader(t, env, configtest.CallerSecrets)); err == nil ||
			!strings.Contains(err.Error(), "GiveUpAfter") {
			t.Errorf("GIVE_UP_AFTER %s (RECOVER_AFTER 90s): %v, want it refused", giveUp, err)
		}
	}
	delete(env, "GIVE_UP_AFTER")
	// A drive (SAGA_TIMEOUT, then the look-up of an order whose write's
	// answer was lost, the cart clear and the timeline write) must end within
	// the request that runs it, with saga.MinClaimWindow (2s) to spare for
	// a recovery run's claims: 28s left a 1s window, which a run's own start
	// could use up, so that every run claimed nothing and counted ok.
	for exec, ok := range map[string]bool{"27s": false, "28s": false, "28.9s": false, "29s": true, "30s": true} {
		e := maps.Clone(env)
		e["exec_timeout"] = exec
		_, err := load(Needs{Tokens: true, Saga: true, Caller: "recover-orders"})(configtest.Reader(t, e, configtest.CallerSecrets))
		if (err == nil) != ok || (err != nil && !strings.Contains(err.Error(), "exec_timeout")) {
			t.Errorf("SAGA_TIMEOUT 20s, exec_timeout %s: %v, want ok %v", exec, err, ok)
		}
	}
	// A hold must outlive the saga that writes its order: past the hold's
	// expiry the sweep gives back an unknown order's hold.
	// reserve-stock is asked for whole seconds: 30.9s is a hold of 30s.
	for _, tt := range []map[string]string{{"HOLD_TTL": "30s", "SAGA_TIMEOUT": "30s"}, {"SAGA_TIMEOUT": "15m"}, {"HOLD_TTL": "30.9s", "SAGA_TIMEOUT": "30.5s"}} {
		e := maps.Clone(env)
		e["RECOVER_AFTER"] = "2h"
		e["exec_timeout"] = "1h"
		maps.Copy(e, tt)
		_, err := load(Needs{Tokens: true, Saga: true, Caller: "create-order"})(configtest.Reader(t, e, configtest.CallerSecrets))
		if err == nil || !strings.Contains(err.Error(), "longer than SAGA_TIMEOUT") {
			t.Errorf("%v: %v, want the hold refused as not outliving the saga", tt, err)
		}
	}
	// The saga's steps and its catalog client share one reading of the
	// gateway's settings: a bad FUNCTION_URLS is one problem, named once.
	bad := maps.Clone(env)
	bad["FUNCTION_URLS"] = "get-product=ftp://catalog"
	_, err := load(Needs{Tokens: true, Saga: true, Caller: "create-order"})(configtest.Reader(t, bad, configtest.CallerSecrets))
	if err == nil || strings.Count(err.Error(), "FUNCTION_URLS") != 1 {
		t.Fatalf("bad FUNCTION_URLS: %v, want it named once", err)
	}
	if _, err := load(Needs{Saga: true})(configtest.Reader(t, env, configtest.CallerSecrets)); err == nil {
		t.Fatal("built a saga without the caller it calls as")
	}
	// The checkout limit is the saga's, create-order's only.
	if _, err := load(Needs{Tokens: true, Limit: true})(configtest.Reader(t, env, configtest.CallerSecrets)); err == nil {
		t.Fatal("built a checkout limit without a saga")
	}
	e := maps.Clone(env)
	e["ORDER_RATE_LIMIT"] = "0"
	if _, err := load(Needs{Tokens: true, Saga: true, Limit: true, Caller: "create-order"})(configtest.Reader(t, e, configtest.CallerSecrets)); err == nil ||
		!strings.Contains(err.Error(), "ORDER_RATE_LIMIT") {
		t.Errorf("ORDER_RATE_LIMIT 0 with Needs.Limit: %v, want it refused", err)
	}
	if d, err := load(Needs{Tokens: true, Saga: true, Limit: true, Caller: "create-order"})(configtest.Reader(t, env, configtest.CallerSecrets)); err != nil || d.Saga == nil {
		t.Errorf("create-order's needs: %v, want a saga", err)
	}
}

// Case is a test case of Load.
type Case = configtest.Case[*Deps]
