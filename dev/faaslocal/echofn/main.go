// Command echofn is a tiny function process for the local runtime's tests
// (deployed with fprocess): it serves /_/health like fnserve and answers every
// other request with what it received, its pid, and, for /secret/<name>, the
// secret from SECRETS_DIR. It logs one line per request to stdout.
//
// With ECHOFN_FNSERVE=1 it serves the same answers through fnserve instead,
// with fnserve's health check, metrics and drain after SIGTERM
// (healthcheck_interval) and its SERVICE_ADDR, as every function of the shop
// does. It is also a multi-call binary like cmd/shop-functions, for the
// runtime's Config.Binary: `echofn list` names the functions echo and
// echo-b (runtimetest.EchoFunctions), and `echofn <name>` serves through
// fnserve.
//
// Either way it catches signals as fnserve.Main does (fnserve.SignalContext):
// the first SIGTERM or SIGINT begins its stop, a second SIGINT ends it at
// once, a second SIGTERM does not.
//
// Without fnserve, on SIGTERM it stops at once, unless told otherwise:
//   - ECHOFN_TERM_DELAY=<duration> keeps it serving that long first, as the
//     of-watchdog keeps routing to a handler for healthcheck_interval;
//   - ECHOFN_TERM_PROBE=<path> makes it GET $GATEWAY_URL<path> first and log
//     "echofn: gateway answered <status>" (or the error).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shopfaas/shop/fnserve"
	"github.com/shopfaas/shop/internal/config"
)

// Echo is the JSON answer to every request.
type Echo struct {
	Name   string            `json:"name"`
	PID    int               `json:"pid"`
	Method string            `json:"method"`
	Path   string            `json:"path"`
	Query  string            `json:"query"`
	Header map[string]string `json:"header"`
	Body   string            `json:"body"`
	Secret string            `json:"secret,omitempty"`
	Env    string            `json:"env,omitempty"`
}

func main() {
	ctx, stop := fnserve.SignalContext()
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "list" {
		fmt.Println("echo\necho-b")
		return
	}
	getenv := os.Getenv
	if len(os.Args) > 1 { // run as a function of a multi-call binary
		getenv = func(k string) string {
			if k == "ECHOFN_FNSERVE" {
				return "1"
			}
			return os.Getenv(k)
		}
	}
	if err := run(ctx, getenv); err != nil {
		fmt.Fprintln(os.Stderr, "echofn:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string) error {
	if getenv("ECHOFN_FNSERVE") != "" {
		build := func(*config.Reader, *slog.Logger) (http.Handler, error) { return echo(getenv), nil }
		return fnserve.Run(ctx, getenv, os.Stdout, build, nil)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(getenv("BIND_HOST"), getenv("PORT")))
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_/health", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "OK") })
	mux.HandleFunc("/", echo(getenv))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		onTerm(getenv)
		_ = srv.Shutdown(context.Background())
	}()
	fmt.Println("echofn listening on", ln.Addr())
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// echo answers a request with what it received.
func echo(getenv func(string) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e := Echo{Name: getenv("OPENFAAS_NAME"), PID: os.Getpid(), Method: r.Method, Path: r.URL.Path,
			Query: r.URL.RawQuery, Header: map[string]string{}, Body: string(body)}
		for k := range r.Header {
			e.Header[k] = r.Header.Get(k)
		}
		if name, ok := strings.CutPrefix(r.URL.Path, "/secret/"); ok {
			b, _ := os.ReadFile(filepath.Join(getenv("SECRETS_DIR"), filepath.Base(name)))
			e.Secret = string(b)
		}
		if name, ok := strings.CutPrefix(r.URL.Path, "/env/"); ok {
			e.Env = getenv(name)
		}
		if d, err := time.ParseDuration(r.URL.Query().Get("sleep")); err == nil {
			fmt.Printf("echofn sleeping %s in %s %s\n", d, r.Method, r.URL.Path)
			time.Sleep(d)
		}
		fmt.Printf("echofn %s %s\n", r.Method, r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Echo-Pid", fmt.Sprint(os.Getpid()))
		_ = json.NewEncoder(w).Encode(e)
	}
}

// onTerm does what the environment asks for between SIGTERM and shutdown.
func onTerm(getenv func(string) string) {
	if path := getenv("ECHOFN_TERM_PROBE"); path != "" {
		c := &http.Client{Timeout: 2 * time.Second}
		if res, err := c.Get(getenv("GATEWAY_URL") + path); err != nil {
			fmt.Println("echofn: gateway unreachable:", err)
		} else {
			_ = res.Body.Close()
			fmt.Println("echofn: gateway answered", res.StatusCode)
		}
	}
	if d, err := time.ParseDuration(getenv("ECHOFN_TERM_DELAY")); err == nil && d > 0 {
		fmt.Println("echofn: SIGTERM, serving", d, "more")
		time.Sleep(d)
	}
}
