package provider

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestGuard(t *testing.T) {
	h := Guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	tests := []struct {
		name, method, path, host string
		header                   map[string]string
		want                     int
	}{
		{"faas-cli deploy", "POST", "/system/functions", "127.0.0.1:8080", map[string]string{"Content-Type": "application/json"}, 418},
		{"no content type", "POST", "/system/functions", "127.0.0.1:8080", nil, 418},
		{"localhost", "GET", "/system/functions", "localhost:8080", nil, 418},
		{"a .localhost name", "GET", "/system/functions", "shop.localhost:8080", nil, 418},
		{"IPv6 loopback", "GET", "/system/functions", "[::1]:8080", nil, 418},
		{"another loopback address", "GET", "/healthz", "127.0.0.2", nil, 418},
		{"DNS rebinding", "POST", "/system/functions", "attacker.example:8080", map[string]string{"Content-Type": "application/json"}, 421},
		{"LAN address", "GET", "/system/functions", "192.168.1.10:8080", nil, 421},
		{"empty host", "GET", "/system/functions", "", nil, 421},
		{"cross-origin page", "POST", "/system/functions", "127.0.0.1:8080", map[string]string{"Origin": "http://evil.example"}, 403},
		{"browser fetch metadata", "POST", "/async-function/echo", "127.0.0.1:8080", map[string]string{"Sec-Fetch-Mode": "no-cors"}, 403},
		{"the edge proxies a browser's call", "GET", "/function/get-me/api/v1/users/me", "127.0.0.1:8080", map[string]string{"Origin": "http://localhost:3000"}, 418},
		{"text/plain body", "POST", "/system/functions", "127.0.0.1:8080", map[string]string{"Content-Type": "text/plain"}, 415},
		{"form body", "PUT", "/system/secrets", "127.0.0.1:8080", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415},
		{"multipart body", "POST", "/system/scale-function/x", "127.0.0.1:8080", map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, 415},
		{"function bodies are the function's business", "POST", "/function/echo", "127.0.0.1:8080", map[string]string{"Content-Type": "text/plain"}, 418},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, strings.NewReader(`{}`))
			r.Host = tt.host
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tt.want {
				t.Errorf("status %d, want %d (%s)", rec.Code, tt.want, rec.Body)
			}
		})
	}
}
