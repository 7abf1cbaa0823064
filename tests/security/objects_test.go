package security

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/routes"
)

// probeBOLA: on every user route, user B asks for A's objects. Routes with
// an {id} name one of A's orders. The ownership check: with the id as the
// API writes it (canonical, either case) B gets 404 exactly as for a missing
// one, A gets it, an admin gets it where the contract says "admin" — this is
// what fails when orders.Order.VisibleTo stops comparing owners. Apart from
// it, the spelling check: the id in braces, as a urn:uuid: or as 32 bare hex
// digits is 404 for B and for A alike (fnhttp.PathID refuses it before any
// store is asked), so those answers prove nothing about ownership and are
// not counted as such. Routes scoped to the caller (/users/me, /cart, /orders) are
// called by B with A's id in every place a careless handler might read it
// (query, headers): B's answers hold nothing of A's, on reads they are what
// B gets without A's id, and B's writes leave A's view of every such route
// unchanged.
func (f *fixture) probeBOLA(t *testing.T) {
	emailB, passB := "probe-b-"+f.Suffix+"@example.com", "probe b password 1"
	a := do(t, request{Method: http.MethodPost, URL: f.url(f.op(t, "register-user"), nil),
		Body: mustJSON(t, map[string]string{"email": emailB, "password": passB, "name": "Probe B"})})
	var userB struct{ ID uuid.UUID }
	if a.Status != http.StatusCreated || json.Unmarshal(a.Body, &userB) != nil {
		t.Fatalf("register B: %s", a)
	}
	tokenB := f.TokenFor(t, userB.ID, auth.RoleCustomer)
	secretsOfA := []string{f.userA.String(), f.emailA, f.orderA.String(), f.notificationA.String()}
	leak := func(a answer) string {
		for _, s := range secretsOfA {
			if strings.Contains(strings.ToLower(string(a.Body)), strings.ToLower(s)) {
				return s
			}
		}
		return ""
	}
	viewOfA := f.viewOf(t, f.tokenA)

	// canonical are the spellings the API reads: B's answers on them are the
	// ownership check. otherSpellings are refused as paths (404 for anyone,
	// the owner too) before any ownership is checked: the spelling check.
	canonical := []string{f.orderA.String(), strings.ToUpper(f.orderA.String())}
	otherSpellings := []string{"{" + f.orderA.String() + "}", "urn:uuid:" + f.orderA.String(), strings.ReplaceAll(f.orderA.String(), "-", "")}
	objects, scoped := 0, 0
	var cancel []operation
	for _, o := range f.ops {
		if o.Access != routes.User {
			continue
		}
		if strings.Contains(o.Path, "{id}") {
			objects++
			if o.Method != http.MethodGet {
				cancel = append(cancel, o)
			}
			// Ownership: B names A's order as the API writes it.
			for _, id := range canonical {
				a := do(t, request{Method: o.Method, URL: f.url(o, map[string]string{"id": id}), Token: tokenB})
				if a.Status != http.StatusNotFound || a.code() != "not_found" || a.problem() != "" {
					t.Errorf("ownership: user B: %s on A's order %s: %s, want a 404 not_found problem as for a missing order", o, id, a)
				}
				if s := leak(a); s != "" {
					t.Errorf("ownership: user B: %s on A's order %s answers A's %s", o, id, s)
				}
			}
			// Spelling, not ownership: refused as a path, for B and (on
			// reads, which change nothing) for the owner A alike.
			for _, id := range otherSpellings {
				callers := []struct {
					who, token string
				}{{"user B", tokenB}}
				if o.Method == http.MethodGet {
					callers = append(callers, struct{ who, token string }{"owner A", f.tokenA})
				}
				for _, c := range callers {
					a := do(t, request{Method: o.Method, URL: f.url(o, map[string]string{"id": id}), Token: c.token})
					if a.Status != http.StatusNotFound || a.code() != "not_found" || a.problem() != "" {
						t.Errorf("spelling: %s: %s on A's order spelled %s: %s, want a 404 not_found problem (only the canonical form is read)", c.who, o, id, a)
					}
					if s := leak(a); s != "" {
						t.Errorf("spelling: %s: %s on A's order spelled %s answers A's %s", c.who, o, id, s)
					}
				}
			}
			if o.Method != http.MethodGet {
				continue
			}
			if a := do(t, request{Method: o.Method, URL: f.url(o, map[string]string{"id": f.orderA.String()}), Token: f.tokenA}); a.Status != http.StatusOK {
				t.Errorf("owner A: %s on A's order: %s, want 200", o, a)
			}
			if strings.Contains(o.Summary, "admin") {
				if a := do(t, request{Method: o.Method, URL: f.url(o, map[string]string{"id": f.orderA.String()}), Token: f.admin}); a.Status != http.StatusOK {
					t.Errorf("an admin: %s on A's order: %s, want 200 (the contract says %q)", o, a, o.Summary)
				}
			}
			continue
		}
		scoped++
		u := f.url(o, map[string]string{"product_id": f.product.ID.String()})
		q := "?user_id=" + f.userA.String() + "&user=" + f.userA.String() + "&owner=" + f.userA.String()
		req := request{Method: o.Method, URL: u + q, Token: tokenB, Header: map[string]string{
			"X-User-Id": f.userA.String(), "X-Consumer-Custom-Id": f.userA.String(), "X-Consumer-Username": f.emailA,
			"X-Forwarded-User": f.userA.String(), "X-Authenticated-Userid": f.userA.String()}}
		if o.Body != nil {
			body := f.example(t, o)
			if o.Function == "create-order" {
				body = orderBody(f.product.ID, 1)
			}
			req.Body = mustJSON(t, body)
		}
		// On a read, B's answer is B's own: what B gets without A's id
		// (asked before and after, since B's notifications may grow in
		// between). The leak check alone cannot tell: A's cart names no
		// secret of A's, only a product and a quantity.
		var own []answer
		if o.Method == http.MethodGet {
			own = append(own, do(t, request{Method: o.Method, URL: u, Token: tokenB}))
		}
		a := do(t, req)
		if a.Status >= 500 || (a.Status >= 400 && a.problem() != "") {
			t.Errorf("user B: %s: %s", o, a)
		}
		if s := leak(a); s != "" {
			t.Errorf("user B: %s answers A's %s: %s", o, s, a)
		}
		if own != nil && a.Status < 400 {
			own = append(own, do(t, request{Method: o.Method, URL: u, Token: tokenB}))
			if !slices.ContainsFunc(own, func(b answer) bool { return b.Status == a.Status && bytes.Equal(b.Body, a.Body) }) {
				t.Errorf("user B: %s with A's id in the query and headers: %s, want B's own answer %s", o, a, own[0])
			}
		}
	}
	if objects == 0 || scoped == 0 {
		t.Fatalf("found %d object routes and %d caller-scoped routes; the route table changed shape", objects, scoped)
	}
	if got := f.viewOf(t, f.tokenA); !equalViews(viewOfA, got) {
		t.Errorf("B's calls changed what A sees:\nbefore %v\nafter  %v", viewOfA, got)
	}

	// Writes on A's order: B's cancel was refused above and A's order is
	// still confirmed; the routes that say "admin" let an admin act on it.
	if a := do(t, request{Method: http.MethodGet, URL: f.EdgeURL + "/api/v1/orders/" + f.orderA.String(), Token: f.tokenA}); !strings.Contains(string(a.Body), `"confirmed"`) {
		t.Errorf("A's order after B's attempts: %s, want it still confirmed", a)
	}
	for _, o := range cancel {
		if !strings.Contains(o.Summary, "admin") {
			continue
		}
		if a := do(t, request{Method: o.Method, URL: f.url(o, map[string]string{"id": f.orderA.String()}), Token: f.admin}); a.Status >= 300 {
			t.Errorf("an admin: %s on A's order: %s, want 2xx (the contract says %q)", o, a, o.Summary)
		}
	}
	t.Logf("%d object routes and %d caller-scoped routes probed", objects, scoped)
}

// viewOf is what the token's holder sees on every caller-scoped GET route.
func (f *fixture) viewOf(t testing.TB, token string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, o := range f.ops {
		if o.Access != routes.User || o.Method != http.MethodGet || strings.Contains(o.Path, "{") {
			continue
		}
		a := do(t, request{Method: o.Method, URL: f.url(o, nil), Token: token})
		out[o.Path] = fmt.Sprintf("%d %s", a.Status, a.Body)
	}
	return out
}

func equalViews(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// injected are fields a client must never set, with the value it would try.
var injected = map[string]string{
	"role": `"admin"`, "id": `"00000000-0000-7000-8000-000000000001"`, "user_id": `"00000000-0000-7000-8000-000000000001"`,
	"status": `"confirmed"`, "price": `1`, "unit_price": `{"amount":1,"currency":"USD"}`, "total": `1`, "amount": `1`,
	"created_at": `"2000-01-01T00:00:00Z"`, "is_admin": `true`, "version": `1`, "sold_count": `1000000`,
	"reserved": `0`, "archived": `false`, "email_verified": `true`,
}

// probeMassAssignment adds, to every object of every write route's body
// that the contract closes (additionalProperties: false), each field of
// injected it does not declare: every request is a 400 invalid_json
// problem, nothing is written (the route's read-back is unchanged), and the
// same body without the field is accepted.
func (f *fixture) probeMassAssignment(t *testing.T) {
	sent := 0
	for _, o := range f.ops {
		if o.Body == nil {
			continue
		}
		ex := f.example(t, o)
		// A customer's token lasts 20 requests: the edge limits POST /orders
		// per token (30 a minute).
		tokens := []string{f.tokenFor(t, o)}
		before := []string{f.readBack(t, o, tokens[0], ex)}
		closed := closedObjects(o.Body)
		if len(closed) == 0 {
			t.Errorf("%s: the contract's body schema refuses no unknown field (additionalProperties: false)", o)
		}
		keys := make([]string, 0, len(closed))
		for k := range closed {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			for name, value := range injected {
				if hasProperty(o.Body, closed[k], name) {
					continue
				}
				if o.Access == routes.User && sent%20 == 19 {
					tokens = append(tokens, f.tokenFor(t, o))
					before = append(before, f.readBack(t, o, tokens[len(tokens)-1], ex))
				}
				body := encodeWith(t, ex, append(slices.Clone(closed[k]), name), value)
				a := do(t, request{Method: o.Method, URL: f.url(o, f.values()), Token: tokens[len(tokens)-1], Body: body})
				sent++
				if a.Status != http.StatusBadRequest || a.code() != "invalid_json" || a.problem() != "" {
					t.Errorf("%s with %s/%s: %s, want a 400 invalid_json problem", o, k, name, a)
				}
			}
		}
		for i, token := range tokens {
			if after := f.readBack(t, o, token, ex); after != before[i] {
				t.Errorf("%s: refused requests wrote something:\nbefore %s\nafter  %s", o, before[i], after)
			}
		}
		token := f.tokenFor(t, o)
		if a := do(t, request{Method: o.Method, URL: f.url(o, f.values()), Token: token, Body: mustJSON(t, ex), Header: precondition(o)}); a.Status >= 300 {
			t.Errorf("%s: the example body itself is refused (%s), so the probe proves nothing", o, a)
		}
	}
	t.Logf("%d requests with injected fields", sent)
}

// tokenFor is a token for the operation: a new admin's, a new customer's,
// or none. New, because gateway/kong.yml limits every write per bearer
// token (300 admin writes a minute per route): the probes of one route with
// one token would spend its budget and be answered 429 instead of by the
// function they probe.
func (f *fixture) tokenFor(t testing.TB, o operation) string {
	switch o.Access {
	case routes.Admin:
		return f.Token(t, auth.RoleAdmin)
	case routes.User:
		return f.Token(t, auth.RoleCustomer)
	}
	return ""
}

// readBack reads what a write route with body ex would have changed. A
// public write route without a read-back fails the suite: add one here.
func (f *fixture) readBack(t testing.TB, o operation, token string, ex map[string]any) string {
	t.Helper()
	get := func(url, token string) string {
		a := do(t, request{Method: http.MethodGet, URL: url, Token: token})
		return fmt.Sprintf("%d %s", a.Status, a.Body)
	}
	switch o.Function {
	case "register-user": // a login with the new account's email and password
		a := do(t, request{Method: http.MethodPost, URL: f.url(f.op(t, "login-user"), nil),
			Body: mustJSON(t, map[string]any{"email": ex["email"], "password": ex["password"]})})
		return fmt.Sprint(a.Status)
	case "login-user":
		return "" // writes nothing
	case "create-product":
		return get(f.EdgeURL+"/api/v1/products?category="+fmt.Sprint(ex["category"]), "")
	case "update-product":
		return get(f.EdgeURL+"/api/v1/products/"+f.scratch.ID.String(), "")
	case "set-stock":
		return get(f.EdgeURL+"/api/v1/inventory/"+f.scratch.ID.String(), "")
	case "set-cart-item":
		return get(f.EdgeURL+"/api/v1/cart", token)
	case "create-order":
		return get(f.EdgeURL+"/api/v1/orders", token)
	}
	t.Fatalf("%s writes but the security suite cannot read back what it writes: add it to readBack()", o)
	return ""
}

// stockLevel is a stock level the scratch product does not have yet.
func stockLevel() int { return 90000 + rand.IntN(9000) }
