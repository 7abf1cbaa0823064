package provider

import (
	"mime"
	"net/http"
	"strings"

	"github.com/shopfaas/shop/internal/loopback"
)

// Guard is the gateway API's defence against the web pages a developer
// visits (issue 12, finding 1): the API listens on loopback, but a browser
// can still reach it.
//   - Host must be a loopback name or address (localhost, *.localhost,
//     127.0.0.0/8, ::1), so a DNS-rebinding page whose name now points at
//     127.0.0.1 is refused (421 Misdirected Request; loopback.Only, which
//     the local edge and, under the runtime, every function process apply
//     too).
//   - A request a browser made for a web page (it carries Origin or
//     Sec-Fetch-Mode; faas-cli, the connectors and the functions never send
//     them) is refused (403) everywhere but /function/*, so no cross-origin
//     "simple" POST reaches the system API or /async-function. /function/*
//     keeps them: the edge proxies browsers' API calls there, and each
//     function verifies its caller itself.
//   - A body sent to /system/* must be JSON when its type is declared
//     (415 otherwise): text/plain, form and multipart bodies are what a page
//     can send without a preflight.
//
// Answers are plain text, as faasd's gateway API answers.
func Guard(next http.Handler) http.Handler {
	return loopback.Only("the gateway API", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		browser := r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Mode") != ""
		if browser && !strings.HasPrefix(r.URL.Path, "/function/") {
			http.Error(w, "the gateway API does not serve browsers", http.StatusForbidden)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "" && strings.HasPrefix(r.URL.Path, "/system/") {
			if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
				http.Error(w, "the system API takes JSON bodies only", http.StatusUnsupportedMediaType)
				return
			}
		}
		next.ServeHTTP(w, r)
	}))
}
