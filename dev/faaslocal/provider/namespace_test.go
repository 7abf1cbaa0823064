package provider

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/logs"
)

// recorder stands in for functions.Store and the log store: it records
// what reached it.
type recorder struct{ removed, scaled, queried []string }

func (f *recorder) Remove(name string) error { f.removed = append(f.removed, name); return nil }

func (f *recorder) Scale(name string, _ uint64) error { f.scaled = append(f.scaled, name); return nil }

func (f *recorder) Has(string) bool { return true }

func (f *recorder) Query(_ context.Context, req logs.Request) (<-chan logs.Message, error) {
	f.queried = append(f.queried, req.Name)
	ch := make(chan logs.Message, 1)
	ch <- logs.Message{Name: req.Name, Namespace: Namespace, Text: "a line"}
	close(ch)
	return ch, nil
}

// remove, scale and logs refuse another namespace as deploy, list and
// describe do (a namespace in the body: 400, as deploy answers; in the
// query: 404, as list and describe answer) before the function, its
// replicas or its logs are touched; the runtime's own namespace, or none,
// reaches the store. Until 2026-12-07 `faas-cli remove get-me -n staging`
// stopped the local get-me and deleted its logs.
func TestRemoveScaleAndLogsRefuseAnotherNamespace(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name, method, target, body string
		want                       int
	}{
		{"remove, body", http.MethodDelete, "/system/functions", `{"functionName":"get-me","namespace":"staging"}`, http.StatusBadRequest},
		{"remove, query", http.MethodDelete, "/system/functions?namespace=staging", `{"functionName":"get-me"}`, http.StatusNotFound},
		{"remove, own", http.MethodDelete, "/system/functions?namespace=openfaas-fn", `{"functionName":"get-me","namespace":"openfaas-fn"}`, http.StatusAccepted},
		{"remove, none", http.MethodDelete, "/system/functions", `{"functionName":"get-me"}`, http.StatusAccepted},
		{"scale, body", http.MethodPost, "/system/scale-function/get-me", `{"serviceName":"get-me","namespace":"staging","replicas":2}`, http.StatusBadRequest},
		{"scale, query", http.MethodPost, "/system/scale-function/get-me?namespace=staging", `{"serviceName":"get-me","replicas":2}`, http.StatusNotFound},
		{"scale, own", http.MethodPost, "/system/scale-function/get-me?namespace=openfaas-fn", `{"serviceName":"get-me","namespace":"openfaas-fn","replicas":2}`, http.StatusAccepted},
		{"logs, query", http.MethodGet, "/system/logs?name=get-me&namespace=staging", "", http.StatusNotFound},
		{"logs, own", http.MethodGet, "/system/logs?name=get-me&namespace=openfaas-fn", "", http.StatusOK},
		{"logs, none", http.MethodGet, "/system/logs?name=get-me", "", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &recorder{}
			r := mux.NewRouter()
			r.HandleFunc("/system/functions", deleteHandler(f, quiet)).Methods(http.MethodDelete)
			r.HandleFunc("/system/scale-function/{name}", scaleHandler(f, quiet)).Methods(http.MethodPost)
			r.HandleFunc("/system/logs", logsHandler(f, quiet)).Methods(http.MethodGet)
			// A server, not a recorder: faas-provider's log handler streams
			// only to a connection (404 to a recorder).
			srv := httptest.NewServer(r)
			defer srv.Close()
			var body io.Reader = http.NoBody
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, _ := http.NewRequest(tc.method, srv.URL+tc.target, body)
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			touched := len(f.removed) + len(f.scaled) + len(f.queried)
			if res.StatusCode != tc.want || (tc.want >= 400) != (touched == 0) {
				t.Errorf("%s %s %s: %d %q, removed %v scaled %v logs %v; want %d", tc.method, tc.target, tc.body,
					res.StatusCode, b, f.removed, f.scaled, f.queried, tc.want)
			}
		})
	}
}

// A name with a namespace suffix is cut at its last dot, as the OpenFaaS
// gateway's GetNamespace cuts it: "a.b.openfaas-fn" is the function "a.b"
// of openfaas-fn, not "a" of the namespace "b.openfaas-fn".
func TestANamespaceIsCutAtTheLastDot(t *testing.T) {
	for _, tc := range []struct {
		raw, name string
		ok        bool
	}{
		{"fn", "fn", true},
		{"fn.openfaas-fn", "fn", true},
		{"a.b.openfaas-fn", "a.b", true},
		{"fn.staging", "", false},
		{"fn.openfaas-fn.staging", "", false},
		{"fn.", "", false},
	} {
		if name, ok := splitName(tc.raw); name != tc.name || ok != tc.ok {
			t.Errorf("splitName(%q) = %q, %v; want %q, %v", tc.raw, name, ok, tc.name, tc.ok)
		}
	}
}
