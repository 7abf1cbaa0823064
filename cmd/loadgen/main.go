// Command loadgen is a small closed-loop load generator for the local
// runtime: N workers each send a request, wait for the answer and send the
// next, for a fixed duration or request count, then it prints the
// throughput, the latency percentiles and the outcomes by status.
//
//	go run ./cmd/loadgen -c 8 -d 10s http://127.0.0.1:8000/api/v1/products/<id>
//	go run ./cmd/loadgen -n 500 -X POST -H 'Content-Type: application/json' -body '{"a":1}' http://127.0.0.1:8080/function/echo
//
// It only sends to loopback addresses, and follows a redirect only to one:
// it is meant for a developer machine (make run, make bench), never to load
// someone else's server. The
// scenarios of make bench (tests/bench) use its package load directly.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/shopfaas/shop/dev/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
}

// headers collects repeated -H flags.
type headers []string

func (h *headers) String() string { return strings.Join(*h, ", ") }

func (h *headers) Set(v string) error {
	if k, _, ok := strings.Cut(v, ":"); !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("header %q: want 'Name: value'", v)
	}
	*h = append(*h, v)
	return nil
}

// summary is the -json output.
type summary struct {
	Requests  int            `json:"requests"`
	ElapsedMS float64        `json:"elapsed_ms"`
	RPS       float64        `json:"rps"`
	P50MS     float64        `json:"p50_ms"`
	P90MS     float64        `json:"p90_ms"`
	P99MS     float64        `json:"p99_ms"`
	MaxMS     float64        `json:"max_ms"`
	Errors    int            `json:"errors"`
	Status    map[string]int `json:"status"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	workers := fs.Int("c", 8, "concurrent workers (closed loops)")
	duration := fs.Duration("d", 10*time.Second, "stop starting requests after this long (0: only -n)")
	count := fs.Int("n", 0, "stop after this many requests (0: only -d)")
	method := fs.String("X", http.MethodGet, "request method")
	body := fs.String("body", "", "request body")
	timeout := fs.Duration("timeout", 30*time.Second, "per-request timeout (positive)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	var hdrs headers
	fs.Var(&hdrs, "H", "request header 'Name: value' (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: loadgen [flags] URL (a loopback URL)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("exactly one URL is required")
	}
	target := fs.Arg(0)
	if err := checkLoopback(target); err != nil {
		return err
	}
	if *workers < 1 || *workers > 1000 {
		return errors.New("-c must be from 1 to 1000")
	}
	if *timeout <= 0 {
		// net/http reads 0 (or less) as no timeout: a request never
		// answered would hold the run, and an interrupt, which stops
		// only the starting of requests, would not end it.
		return errors.New("-timeout must be positive")
	}
	if *duration <= 0 && *count <= 0 {
		return errors.New("set -d or -n, so that the run ends by itself")
	}
	header := http.Header{}
	for _, h := range hdrs {
		k, v, _ := strings.Cut(h, ":")
		header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{
		MaxIdleConns: *workers, MaxIdleConnsPerHost: *workers, IdleConnTimeout: 30 * time.Second},
		CheckRedirect: loopbackRedirects}
	res, err := load.Run(ctx, load.Config{
		Workers: *workers, Duration: *duration, Requests: *count, Client: client,
		Request: func(_, _ int) (*http.Request, error) {
			var rd io.Reader
			if *body != "" {
				rd = strings.NewReader(*body)
			}
			req, err := http.NewRequest(*method, target, rd)
			if err != nil {
				return nil, err
			}
			req.Header = header.Clone()
			return req, nil
		},
	})
	if err != nil {
		return err
	}
	h := res.Latency
	if *asJSON {
		s := summary{Requests: res.Requests, ElapsedMS: ms(res.Elapsed), RPS: res.RPS(), P50MS: ms(h.Quantile(0.5)),
			P90MS: ms(h.Quantile(0.9)), P99MS: ms(h.Quantile(0.99)), MaxMS: ms(h.Max()),
			Errors: res.Errors(load.Success), Status: map[string]int{}}
		for _, f := range strings.Fields(res.StatusSummary()) {
			k, v, _ := strings.Cut(f, ":")
			var n int
			fmt.Sscan(v, &n)
			s.Status[k] = n
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	fmt.Fprintf(stdout, "%d requests in %v with %d workers: %.1f req/s\n", res.Requests, res.Elapsed.Round(time.Millisecond), *workers, res.RPS())
	fmt.Fprintf(stdout, "latency p50 %v  p90 %v  p99 %v  max %v  mean %v\n", h.Quantile(0.5), h.Quantile(0.9),
		h.Quantile(0.99), h.Max(), h.Mean())
	fmt.Fprintf(stdout, "outcomes %s  (errors: %d)\n", res.StatusSummary(), res.Errors(load.Success))
	if res.FirstError != nil {
		fmt.Fprintf(stdout, "first error: %v\n", res.FirstError)
	}
	return nil
}

// loopbackRedirects is the client's CheckRedirect: a redirect is followed
// only to a loopback address (checkLoopback), as net/http does, at most 10
// times; one off this machine fails the request, counted as an error.
func loopbackRedirects(req *http.Request, via []*http.Request) error {
	if err := checkLoopback(req.URL.String()); err != nil {
		return fmt.Errorf("redirect refused: %w", err)
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

// checkLoopback refuses URLs whose host is not a loopback address or
// "localhost": the generator is for this machine only.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s is not a loopback address: loadgen only loads this machine", host)
}
