package edge

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// On a route the jwt plugin guards, the upstream sees the consumer headers
// of the verified token's consumer only: Kong sets or clears each of
// X-Consumer-ID, X-Consumer-Custom-ID and X-Consumer-Username (set_consumer),
// so a client's never reaches the function. The local edge has no consumer
// ids and the file's consumer no custom_id: both are cleared. Until
// 2026-12-07 a client's X-Consumer-ID and X-Consumer-Custom-ID went through
// beside the verified X-Consumer-Username.
func TestAClientsConsumerHeadersDoNotPassTheJWTPlugin(t *testing.T) {
	now := time.Now()
	srv := policyEdge(t, &now)
	tok := token(t, jwt.SigningMethodEdDSA, testKey, jwt.MapClaims{"iss": "shop-users", "sub": "u1", "exp": now.Add(time.Hour).Unix()})
	res, b := send(t, "GET", srv.URL+"/private", map[string]string{"Authorization": "Bearer " + tok,
		"X-Consumer-ID": "forged-id", "X-Consumer-Custom-ID": "forged-custom", "X-Consumer-Username": "forged-name"})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /private with a valid token: %d %s", res.StatusCode, b)
	}
	var s seen
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	got := [3]string{s.Header.Get("X-Consumer-ID"), s.Header.Get("X-Consumer-Custom-ID"), s.Header.Get("X-Consumer-Username")}
	if want := [3]string{"", "", "issuer"}; got != want {
		t.Errorf("the upstream saw X-Consumer-ID, -Custom-ID, -Username %q, want %q", got, want)
	}
}
