// Command chaos runs the chaos suite of issue 9 (dev/chaos): the whole local
// stack against a private PostgreSQL cluster and RabbitMQ node, customers
// ordering through the edge while processes are killed and both services
// restarted, then the shop's invariants. It prints the counts and each
// invariant, ends with PASS or FAIL (exit status 1), and stops everything it
// started.
//
//	go run ./cmd/chaos                          # long form: 3 min, ~1.5 s between kills, 3+3 restarts
//	go run ./cmd/chaos -short                   # CI form: 30 s, 1 restart of each
//	go run ./cmd/chaos -duration 5m -kill-every 1s -pg-restarts 4 -rabbitmq-restarts 4
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shopfaas/shop/dev/chaos"
)

func main() {
	var o chaos.Options
	short := flag.Bool("short", false, "the CI form: 30s of load, 1 PostgreSQL restart (a crash: immediate shutdown, SIGQUIT) and 1 RabbitMQ stop_app/start_app")
	flag.DurationVar(&o.Duration, "duration", 3*time.Minute, "how long customers order under chaos")
	flag.IntVar(&o.Customers, "customers", 6, "concurrent customers")
	flag.DurationVar(&o.KillEvery, "kill-every", 1500*time.Millisecond, "mean interval between SIGKILLs of a random function or connector process")
	flag.IntVar(&o.PGRestarts, "pg-restarts", 3, "PostgreSQL restarts, spread over the run: a crash (immediate shutdown, SIGQUIT to the postmaster), then a planned one (fast shutdown, SIGINT), alternating")
	flag.IntVar(&o.RabbitRestarts, "rabbitmq-restarts", 3, "RabbitMQ restarts, alternately stop_app/start_app and SIGKILL of the node")
	flag.DurationVar(&o.Settle, "settle", 5*time.Minute, "how long the shop may take to settle afterwards")
	flag.DurationVar(&o.AnswerWithin, "answer-within", 5*time.Minute, "how long one request is retried (5xx, 429, transport errors) before it counts as never answered, failing the run")
	flag.StringVar(&o.GatewayAddr, "gateway", "127.0.0.1:8200", "local runtime's gateway address")
	flag.StringVar(&o.EdgeAddr, "edge", "127.0.0.1:8201", "local runtime's edge address")
	flag.BoolVar(&o.Verbose, "v", false, "echo every process's output")
	flag.Parse()
	if *short {
		o.Duration, o.PGRestarts, o.RabbitRestarts, o.Settle = 30*time.Second, 1, 1, 3*time.Minute
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := chaos.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}
