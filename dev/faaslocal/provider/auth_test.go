package provider

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gorilla/mux"
)

var testCredentials = Credentials{User: "admin", Password: "s3cret-Pa55"}

func TestBasicAuthGuardsTheSystemAPI(t *testing.T) {
	h := RequireBasicAuth(testCredentials, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	tests := []struct {
		name, method, path string
		user, password     string
		auth               bool
		want               int
	}{
		{"faas-cli login", "GET", "/system/functions", "admin", "s3cret-Pa55", true, 418},
		{"no credentials", "GET", "/system/functions", "", "", false, 401},
		{"wrong password", "POST", "/system/functions", "admin", "s3cret-Pa56", true, 401},
		{"password prefix", "POST", "/system/functions", "admin", "s3cret", true, 401},
		{"wrong user", "GET", "/system/info", "root", "s3cret-Pa55", true, 401},
		{"empty credentials", "GET", "/system/secrets", "", "", true, 401},
		{"unrouted system path", "GET", "/system/alert", "", "", false, 401},
		{"system itself", "GET", "/system", "", "", false, 401},
		{"invocation is open", "POST", "/function/echo", "", "", false, 418},
		{"async invocation is open", "POST", "/async-function/echo", "", "", false, 418},
		{"health is open", "GET", "/healthz", "", "", false, 418},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, nil)
			if tt.auth {
				r.SetBasicAuth(tt.user, tt.password)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d", rec.Code, tt.want)
			}
			if got := rec.Header().Get("WWW-Authenticate"); (tt.want == 401) != strings.HasPrefix(got, "Basic realm=") {
				t.Errorf("WWW-Authenticate %q with status %d", got, rec.Code)
			}
		})
	}
}

// Every route of the gateway API under /system is refused without
// credentials, however the path is spelled; the others are not.
func TestEverySystemRouteNeedsCredentials(t *testing.T) {
	h := New(Deps{})
	router := h.routes()
	guarded := RequireBasicAuth(testCredentials, h.Router())
	variable := regexp.MustCompile(`\{[^}]*\}`)
	var paths []string
	err := router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		methods, _ := route.GetMethods()
		if len(methods) == 0 {
			methods = []string{"GET"}
		}
		p := variable.ReplaceAllString(tpl, "x")
		if !strings.HasPrefix(p, "/system") {
			return nil
		}
		paths = append(paths, p)
		for _, m := range methods {
			rec := httptest.NewRecorder()
			guarded.ServeHTTP(rec, httptest.NewRequest(m, p, nil))
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("%s %s without credentials: %d", m, p, rec.Code)
			}
		}
		return nil
	})
	if err != nil || len(paths) < 10 {
		t.Fatalf("walked %d system routes: %v", len(paths), err)
	}
	for _, p := range []string{"//system/functions", "/function/../system/functions", "/./system/secrets", "/function/x/../../system/info"} {
		rec := httptest.NewRecorder()
		guarded.ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1:8080"+p, nil))
		if rec.Code != http.StatusUnauthorized && rec.Code != http.StatusMovedPermanently {
			t.Errorf("GET %s without credentials: %d (want 401 or the router's redirect)", p, rec.Code)
		}
	}
}
