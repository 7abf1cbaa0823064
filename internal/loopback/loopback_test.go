package loopback_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/shopfaas/shop/internal/loopback"
)

// Only serves loopback names and addresses and answers every other Host,
// a DNS-rebinding page's name, a LAN address or none, 421.
func TestOnlyServesLoopbackHostNames(t *testing.T) {
	h := loopback.Only("the fixture", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	for host, want := range map[string]int{
		"127.0.0.1:8080":           http.StatusTeapot,
		"127.0.0.2":                http.StatusTeapot,
		"localhost":                http.StatusTeapot,
		"LOCALHOST.:8000":          http.StatusTeapot,
		"shop.localhost:8000":      http.StatusTeapot,
		"[::1]:8080":               http.StatusTeapot,
		"rebound.attacker.example": http.StatusMisdirectedRequest,
		"localhost.example:8000":   http.StatusMisdirectedRequest,
		"192.168.1.10:8080":        http.StatusMisdirectedRequest,
		"0.0.0.0:8080":             http.StatusMisdirectedRequest,
		"":                         http.StatusMisdirectedRequest,
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != want {
			t.Errorf("Host %q: %d, want %d", host, rec.Code, want)
		}
	}
}
