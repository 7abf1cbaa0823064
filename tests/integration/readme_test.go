package integration

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
)

// readmeDemoFunctions are the functions README.md's demo reaches, directly
// or through the checkout's saga and the order's events.
var readmeDemoFunctions = []string{"register-user", "login-user", "get-me", "search-products", "list-products",
	"get-product", "set-cart-item", "create-order", "reserve-stock", "commit-stock", "release-stock", "charge-payment",
	"refund-payment", "list-orders", "get-order", "get-order-timeline", "get-payment", "cancel-order",
	"list-notifications", "notify-user", "update-product-stats", "index-product"}

// TestTheREADMEDemo runs the sh block of README.md that follows "Once `make
// run` is up:", as a newcomer pastes it, against a stack seeded as make run
// seeds it (cmd/seed: the admin and the demo catalog). Only the addresses
// (127.0.0.1:8000, the edge; 127.0.0.1:8080, the gateway), the secrets
// folder and the email (one per run) are rewritten; the block runs under
// bash -eu -o pipefail, and the test reads what each command printed: a
// README edit that breaks the demo fails here.
func TestTheREADMEDemo(t *testing.T) {
	block := readmeDemo(t)
	_, env := eventEnv(t)
	s := startShop(t, readmeDemoFunctions, []string{"outbox-relay", "rabbitmq"}, env)
	seedLikeMakeRun(t, s)

	email := "ada-" + s.Suffix + "@example.com"
	script := block
	for _, r := range []struct{ old, new string }{
		{"127.0.0.1:8000", strings.TrimPrefix(s.EdgeURL, "http://")},
		{"127.0.0.1:8080", strings.TrimPrefix(s.GatewayURL, "http://")},
		{".local/secrets/basic-auth-password", filepath.Join(s.SecretsDir, "basic-auth-password")},
		{"ada@example.com", email},
	} {
		if !strings.Contains(script, r.old) {
			t.Fatalf("README.md's demo no longer mentions %s, which this test rewrites: update the test with the README", r.old)
		}
		script = strings.ReplaceAll(script, r.old, r.new)
	}
	// Before each command the trap prints a marker and the command (as
	// written, unexpanded), so that each one's output can be read apart.
	script = "set -x\ntrap 'printf \"\\n" + demoMarker + "%s\\n\" \"$BASH_COMMAND\"' DEBUG\n" + script +
		"\ntrap - DEBUG\nprintf '\\n" + demoMarker + "vars\\nTOKEN=%s\\nPRODUCT=%s\\nORDER=%s\\n' \"$TOKEN\" \"$PRODUCT\" \"$ORDER\"\n"
	cmd := exec.Command("bash", "-eu", "-o", "pipefail", "-c", script)
	cmd.Dir = t.TempDir() // nothing the block does may depend on the repository's own .local
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("README.md's demo failed: %v\nstdout:\n%s\nstderr (set -x):\n%s", err, stdout.String(), stderr.String())
	}
	checkedOut := time.Now()
	t.Logf("README.md's demo ran in %s", checkedOut.Sub(start).Round(time.Millisecond))
	d := parseDemo(stdout.String())
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format+"\nwhat the demo printed:\n%s", append(args, d.summary())...)
	}

	var user struct{ ID, Email string }
	if d.json(t, "register", &user, "-XPOST", "/api/v1/users "); user.Email != email || user.ID == "" {
		fail("registration answered %+v, want the user with email %s", user, email)
	}
	vars := d.vars(t)
	token := vars["TOKEN"]
	if !regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`).MatchString(token) {
		fail("TOKEN is %q, not a token (did the login or its sed fail?)", token)
	}
	var me struct{ Email string }
	if d.json(t, "/users/me", &me, "/api/v1/users/me "); me.Email != email {
		fail("/users/me answered %+v, want %s", me, email)
	}
	var found struct {
		Hits []struct{ Name string } `json:"hits"`
	}
	d.json(t, "the search", &found, "/api/v1/search/products")
	if len(found.Hits) == 0 || !strings.Contains(strings.ToLower(found.Hits[0].Name), "headphones") {
		fail("the search for \"hedphones\" found %+v, want a headphones product", found.Hits)
	}
	product, err := uuid.Parse(vars["PRODUCT"])
	if err != nil {
		fail("PRODUCT is %q, not a product id: %v", vars["PRODUCT"], err)
	}
	var cart struct {
		Items []struct {
			ProductID uuid.UUID `json:"product_id"`
			Quantity  int       `json:"quantity"`
		} `json:"items"`
	}
	if d.json(t, "the cart", &cart, "/api/v1/cart/items/"); len(cart.Items) != 1 || cart.Items[0].ProductID != product || cart.Items[0].Quantity != 2 {
		fail("the cart is %+v, want 2 of %s", cart.Items, product)
	}
	var order struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if d.json(t, "the checkout", &order, "-XPOST", "/api/v1/orders "); order.Status != "confirmed" || order.ID != vars["ORDER"] {
		fail("the checkout answered %+v, want a confirmed order, the one ORDER names (%q)", order, vars["ORDER"])
	}
	if d.json(t, "the order", &order, "/api/v1/orders/$ORDER "); order.Status != "confirmed" {
		fail("the order is %+v, want confirmed", order)
	}
	var timeline struct {
		Steps []json.RawMessage `json:"steps"`
	}
	if d.json(t, "the timeline", &timeline, "/timeline"); len(timeline.Steps) == 0 {
		fail("the order's timeline is empty")
	}
	var payment struct{ Status string }
	if d.json(t, "the payment", &payment, "/payment"); payment.Status != "captured" {
		fail("the payment is %+v, want captured", payment)
	}
	if d.json(t, "the cancellation", &order, "/cancel"); order.Status != "cancelled" {
		fail("the cancellation answered %+v, want cancelled", order)
	}
	if code := call(t, http.MethodGet, s.EdgeURL+"/api/v1/orders/"+vars["ORDER"]+"/payment", token, nil, &payment); code != http.StatusOK || payment.Status != "refunded" {
		fail("after the cancellation the payment is %d %+v, want refunded", code, payment)
	}
	var functions []struct{ Name string }
	d.json(t, "the gateway's function list", &functions, "/system/functions")
	if len(functions) != len(readmeDemoFunctions) {
		fail("the gateway lists %d functions, want the %d deployed", len(functions), len(readmeDemoFunctions))
	}

	// "within a second or two" of the checkout, says the README; the block
	// asks at once, so the test asks again, for up to 10 s.
	d.output(t, "/users/me/notifications")
	deadline := checkedOut.Add(10 * time.Second)
	for {
		var list struct {
			Items []notification `json:"items"`
		}
		call(t, http.MethodGet, s.EdgeURL+"/api/v1/users/me/notifications", token, nil, &list)
		if slices.ContainsFunc(list.Items, func(n notification) bool { return n.OrderID == vars["ORDER"] }) {
			break
		}
		if time.Now().After(deadline) {
			fail("no notification of order %s 10 s after the demo's checkout: %+v", vars["ORDER"], list.Items)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// notification is what the test reads of a notification.
type notification struct {
	OrderID string `json:"order_id"`
}

// readmeDemo is README.md's sh block after the line "Once `make run` is up:".
func readmeDemo(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(runtimetest.Root(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "\nOnce `make run` is up:\n")
	if !ok {
		t.Fatal("README.md has no line \"Once `make run` is up:\" before its demo")
	}
	_, after, ok = strings.Cut(after, "```sh\n")
	if !ok {
		t.Fatal("README.md has no ```sh block after \"Once `make run` is up:\"")
	}
	block, _, ok := strings.Cut(after, "\n```")
	if !ok {
		t.Fatal("README.md's demo block is not closed")
	}
	return block + "\n"
}

// seedLikeMakeRun runs cmd/seed as cmd/faas-local does once the stack is up
// (the development environment file, the runtime's secrets), against the
// test's databases and Redis keys.
func seedLikeMakeRun(t *testing.T, s *shop) {
	t.Helper()
	root := runtimetest.Root(t)
	cmd := exec.Command(runtimetest.Binary(t, "./cmd/seed"), "-env-file", "env/development.yml")
	cmd.Dir = root
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "SECRETS_DIR=" + s.SecretsDir,
		"SHOP_ENV=development", "REDIS_ADDR=127.0.0.1:6379", "PRODUCT_CACHE_PREFIX=test:" + s.Suffix + ":product:"}
	for k, v := range s.DB {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}
}

// demoMarker starts the line naming the command whose output follows.
const demoMarker = "@@@demo@@@ "

// demoRun is what each command of the demo printed, in order.
type demoRun []struct{ command, output string }

func parseDemo(stdout string) demoRun {
	var d demoRun
	for _, part := range strings.Split(stdout, "\n"+demoMarker)[1:] {
		command, output, _ := strings.Cut(part, "\n")
		d = append(d, struct{ command, output string }{command, output})
	}
	return d
}

// output is what the first command containing every one of parts printed.
func (d demoRun) output(t *testing.T, parts ...string) string {
	t.Helper()
next:
	for _, c := range d {
		for _, p := range parts {
			if !strings.Contains(c.command, p) {
				continue next
			}
		}
		return c.output
	}
	t.Fatalf("no command of README.md's demo contains %q; commands: %q", parts, d)
	return ""
}

// json decodes what the first command containing every one of parts printed.
func (d demoRun) json(t *testing.T, what string, out any, parts ...string) {
	t.Helper()
	raw := d.output(t, parts...)
	if err := json.Unmarshal([]byte(raw), out); err != nil {
		t.Errorf("%s printed %q, not JSON: %v", what, raw, err)
	}
}

// summary is each command and the start of its output, for a failure.
func (d demoRun) summary() string {
	var b strings.Builder
	for _, c := range d {
		out := c.output
		if len(out) > 400 {
			out = out[:400] + "…"
		}
		b.WriteString("$ " + c.command + "\n" + out + "\n")
	}
	return b.String()
}

// vars are the shell variables the test prints after the block.
func (d demoRun) vars(t *testing.T) map[string]string {
	t.Helper()
	vars := map[string]string{}
	for _, line := range strings.Split(d.output(t, "vars"), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			vars[k] = v
		}
	}
	return vars
}
