package integration

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// usersCall sends body (raw JSON, none when empty) to the edge and returns the
// status, the Content-Type and the decoded JSON object.
func usersCall(t *testing.T, method, url, token, body string) (int, string, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := map[string]any{}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: %d %q is not JSON", method, url, res.StatusCode, raw)
		}
	}
	return res.StatusCode, res.Header.Get("Content-Type"), out
}

// A client's first minutes, through the local edge and gateway to the three
// users functions running as processes: register, log in, read the account.
func TestUsersThroughTheEdge(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the local runtime; -short was asked for")
	}
	rt := runtimetest.Start(t, runtimetest.Options{
		Functions: []string{"register-user", "login-user", "get-me"},
		Env:       map[string]string{"USERS_DATABASE_URL": pgtest.NewDatabase(t), "ACCESS_TOKEN_TTL": "10m"},
	})
	edge := rt.EdgeURL + "/api/v1"

	status, _, user := usersCall(t, http.MethodPost, edge+"/users", "",
		`{"email":"Edge.User@Example.com","password":"edge-password","name":"Edge User"}`)
	if status != http.StatusCreated || user["email"] != "edge.user@example.com" || user["role"] != "customer" || user["id"] == "" {
		t.Fatalf("register: %d %v", status, user)
	}

	status, ct, problem := usersCall(t, http.MethodPost, edge+"/users", "",
		`{"email":"edge.user@example.COM","password":"edge-password","name":"Again"}`)
	if status != http.StatusConflict || problem["code"] != "email_taken" || ct != "application/problem+json" {
		t.Fatalf("duplicate register: %d %s %v", status, ct, problem)
	}

	status, _, wrong := usersCall(t, http.MethodPost, edge+"/auth/login", "", `{"email":"edge.user@example.com","password":"not-the-password"}`)
	if status != http.StatusUnauthorized || wrong["code"] != "invalid_credentials" {
		t.Fatalf("login with a wrong password: %d %v", status, wrong)
	}

	status, _, tok := usersCall(t, http.MethodPost, edge+"/auth/login", "", `{"email":"EDGE.USER@example.com","password":"edge-password"}`)
	if status != http.StatusOK || tok["token_type"] != "Bearer" || tok["expires_in"] != float64(600) {
		t.Fatalf("login: %d %v", status, tok)
	}
	access, _ := tok["access_token"].(string)
	// login-user signs with the runtime's jwt-signing-key: the public
	// jwt-verify-key (what the edge and every other function hold) verifies it.
	verifier, err := auth.ParseVerifier(rt.ReadSecret(t, "jwt-verify-key"))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := verifier.Verify(access); err != nil || id.UserID.String() != user["id"] {
		t.Fatalf("issued token: %+v, %v; want the registered user %v", id, err, user["id"])
	}

	status, _, me := usersCall(t, http.MethodGet, edge+"/users/me", access, "")
	if status != http.StatusOK || me["id"] != user["id"] || me["email"] != "edge.user@example.com" || me["name"] != "Edge User" {
		t.Fatalf("get me: %d %v", status, me)
	}

	if status, _, _ := usersCall(t, http.MethodGet, edge+"/users/me", "", ""); status != http.StatusUnauthorized {
		t.Fatalf("get me without a token: %d, want 401", status)
	}
}
