// Command deadletters is the operator tool for the functions' dead-letter
// queues (fn.<name>.dlq):
//
//	deadletters list [function...]          DLQ counts and messages (id, type, attempts, last status)
//	deadletters inspect <function> <id>     one message with all headers and its envelope
//	deadletters replay <function> <id>|all  move back to the function's queue (fresh attempt count)
//	deadletters purge <function> <id>|all   delete
//
// list of a function whose DLQ does not exist (a misspelt name) fails
// naming it; list without functions shows such a discovered one with 0.
//
// An empty <id> is a usage error (every message is spelt all), and a replay
// or purge of an id the DLQ does not hold fails naming it. An id takes every
// message of that event the DLQ holds: a fault between a copy's publish and
// the original's ack (the connector's or a replay's) leaves two.
//
// replay all moves the messages the DLQ holds when it starts, each once: one
// the function refuses again while the replay runs is dead-lettered behind
// them and waits for the next replay (broker.ReplayDeadLetters).
//
// An interrupt (Ctrl-C, SIGTERM) stops inspect, replay and purge before the
// next message they would read, exit 1: what they did stands, nothing is
// lost, and a replay interrupted while it awaited a copy's confirmation may
// leave that message in both queues (until 2026-12-07 inspect and purge read
// on through the DLQ whatever the interrupt, a purge deleting what it met,
// and a replay stopped only at the next message it would replay).
//
// Without functions, list asks the gateway ($GATEWAY_URL) for the functions
// with a `topic` annotation; with basic_auth=true it sends the gateway API's
// credentials from SECRETS_DIR (basic-auth-user, basic-auth-password), as
// the connectors do; the other commands need only the broker. Environment:
// RABBITMQ_URL [amqp://guest:guest@127.0.0.1:5672/], GATEWAY_URL
// [http://127.0.0.1:8080], EXCHANGE_PREFIX [""], basic_auth [false],
// SECRETS_DIR [/var/openfaas/secrets]. Locally:
//
//	basic_auth=true SECRETS_DIR=.local/secrets go run ./cmd/deadletters list
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	sdktypes "github.com/openfaas/connector-sdk/types"
	sdk "github.com/openfaas/go-sdk"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopfaas/shop/internal/broker"
	"github.com/shopfaas/shop/internal/config"
)

const usage = `usage:
  deadletters list [function...]
  deadletters inspect <function> <event-id>
  deadletters replay <function> <event-id>|all   (all: the messages there when it starts, each once)
  deadletters purge <function> <event-id>|all
environment: RABBITMQ_URL [amqp://guest:guest@127.0.0.1:5672/], its password from the rabbitmq-password
             secret in SECRETS_DIR [/var/openfaas/secrets] when there; EXCHANGE_PREFIX [""]; list without
             functions asks GATEWAY_URL [http://127.0.0.1:8080], with basic_auth=true [false] sending
             SECRETS_DIR's basic-auth-user and basic-auth-password`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "deadletters:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	if len(args) == 1 && isHelp(args[0]) {
		// Asked for, the usage is an answer, not an error (exit 0),
		// and needs no configuration.
		_, err := fmt.Fprintln(out, usage)
		return err
	}
	c := config.New(getenv)
	rawURL := c.String("RABBITMQ_URL", broker.DefaultURL)
	gateway := c.String("GATEWAY_URL", "http://127.0.0.1:8080")
	names := broker.Names{Prefix: c.String("EXCHANGE_PREFIX", "")}
	password := c.OptionalSecret(broker.PasswordSecret)
	if err := c.Err(); err != nil {
		return err
	}
	url, err := broker.URL(rawURL, password)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		return errors.New(usage)
	}
	cmd, rest := args[0], args[1:]
	need := map[string]int{"inspect": 2, "replay": 2, "purge": 2}
	if n, ok := need[cmd]; ok && (len(rest) != n || rest[1] == "") {
		// An empty id is a usage error, never "every message": a shell
		// variable left unset must not purge or replay the whole DLQ.
		return errors.New(usage)
	} else if !ok && cmd != "list" {
		return errors.New(usage)
	}
	conn, err := broker.Dial(ctx, url, "shop-deadletters")
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	switch cmd {
	case "list":
		fns := rest
		if len(fns) == 0 {
			// Only this asks the gateway, so only this needs its
			// credentials (basic_auth=true).
			g := config.New(getenv)
			var gatewayAuth sdk.ClientAuth
			if user, password := g.GatewayBasicAuth(); user != "" {
				gatewayAuth = &sdk.BasicAuth{Username: user, Password: password}
			}
			if err := g.Err(); err != nil {
				return err
			}
			if fns, err = subscribed(gateway, gatewayAuth); err != nil {
				return fmt.Errorf("discover functions (or name them): %w", err)
			}
		}
		return list(conn, names, fns, len(rest) > 0, out)
	case "inspect":
		return inspect(ctx, conn, names, rest[0], rest[1], out)
	case "replay":
		id := idArg(rest[1])
		n, err := broker.ReplayDeadLetters(ctx, conn, names, rest[0], id)
		if err == nil && n == 0 && id != "" {
			return fmt.Errorf("no message %s in %s: nothing replayed", id, names.DLQ(rest[0]))
		}
		fmt.Fprintf(out, "replayed %d message(s) to %s\n", n, names.Queue(rest[0]))
		return err
	default:
		id := idArg(rest[1])
		n, err := broker.PurgeDeadLetters(ctx, conn, names, rest[0], id)
		if err == nil && n == 0 && id != "" {
			return fmt.Errorf("no message %s in %s: nothing purged", id, names.DLQ(rest[0]))
		}
		fmt.Fprintf(out, "purged %d message(s) from %s\n", n, names.DLQ(rest[0]))
		return err
	}
}

// isHelp reports whether arg asks for the usage, as the flag package reads
// it (flag.ErrHelp).
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}

// idArg maps the command line's event id to the broker's: "all" is every
// message (""); run refused an empty argument before.
func idArg(s string) string {
	if s == "all" {
		return ""
	}
	return s
}

// subscribed lists the functions with a topic annotation, as the connector
// discovers them.
func subscribed(gateway string, auth sdk.ClientAuth) ([]string, error) {
	byTopic, err := sdktypes.NewFunctionLookupBuilder(gateway, ",", &http.Client{Timeout: 5 * time.Second}, auth).Build()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, fns := range byTopic {
		for _, fn := range fns {
			name, _, _ := strings.Cut(fn, ".")
			if !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// list prints the functions' dead letters. A function the operator named
// (named) whose DLQ does not exist is an error, not 0 dead letters: a
// misspelt name would look like an empty DLQ. A discovered one without a
// DLQ yet (its connector has not declared it) has 0.
func list(conn *amqp.Connection, names broker.Names, fns []string, named bool, out io.Writer) error {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	defer tw.Flush()
	for _, fn := range fns {
		n, exists, err := broker.DeadLetterQueue(conn, names, fn)
		if err != nil {
			return err
		}
		if named && !exists {
			return fmt.Errorf("%s: no such queue %s (not a subscribed function?)", fn, names.DLQ(fn))
		}
		fmt.Fprintf(tw, "%s\t%d dead letter(s)\n", fn, n)
		if n == 0 {
			continue
		}
		dls, err := broker.PeekDeadLetters(conn, names, fn, 50)
		if err != nil {
			return err
		}
		for _, d := range dls {
			fmt.Fprintf(tw, "  %s\t%s\tattempts=%d\tlast_status=%d\t%s\n", d.ID, cmp.Or(d.Type, d.Topic), d.Attempts, d.LastStatus, d.FailedAt)
		}
		if n > len(dls) {
			fmt.Fprintf(tw, "  … %d more\n", n-len(dls))
		}
	}
	return nil
}

func inspect(ctx context.Context, conn *amqp.Connection, names broker.Names, fn, id string, out io.Writer) error {
	d, ok, err := broker.FindDeadLetter(ctx, conn, names, fn, id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no message %s in %s", id, names.DLQ(fn))
	}
	fmt.Fprintf(out, "id:          %s\ntype:        %s\ntopic:       %s\nattempts:    %d\nlast status: %d\nlast error:  %s\nfailed at:   %s\nheaders:\n",
		d.ID, d.Type, d.Topic, d.Attempts, d.LastStatus, d.LastError, d.FailedAt)
	keys := make([]string, 0, len(d.Headers))
	for k := range d.Headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(out, "  %s: %v\n", k, d.Headers[k])
	}
	fmt.Fprintf(out, "envelope:\n%s\n", d.Body)
	return nil
}
