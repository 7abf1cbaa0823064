// Command deadletters is the operator tool for the functions' dead-letter
// queues (fn.<name>.dlq):
//
//	deadletters list [-limit N] [function...]   DLQ counts and messages (id, type, attempts, last status)
//	deadletters inspect <function> <id>         one message with all headers and its envelope
//	deadletters replay [filters] <function> <id>...|all   move back to the function's queue (fresh attempt count)
//	deadletters purge [filters] <function> <id>...|all    delete
//
// list shows the first 50 messages of each DLQ after its total, -limit N
// the first N, -limit 0 every one. replay and purge take the messages with
// one of the ids, in one walk over the DLQ, or all; the filters narrow
// that: -type T (the event type or the routing key), -older-than D
// (dead-lettered, shop-failed-at, more than D ago; a message without that
// header is never older). A message they read and do not take stays in
// the DLQ, also when the connection is lost half-way (it is held
// unacknowledged, and RabbitMQ requeues it).
//
// list of a function whose DLQ does not exist (a misspelt name) fails
// naming it; list without functions shows such a discovered one with 0.
//
// An empty <id> is a usage error (every message is spelt all, alone), and a
// replay or purge of an id the DLQ does not hold fails naming it, after
// taking the ids it found. An id takes every
// message of that event the DLQ holds: a fault between a copy's publish and
// the original's ack (the connector's or a replay's) leaves two.
//
// replay all moves the messages the DLQ holds when it starts, each once: one
// the function refuses again while the replay runs is dead-lettered behind
// them and waits for the next replay (broker.ReplayDeadLetters).
//
// Each command waits up to 5 s after it read a DLQ for the messages it
// read and did not take to be ready there again; when they are not all back
// (a quorum queue's delivery limit dropped them, another consumer holds
// them, a purge meanwhile) it prints what it did and fails naming
// broker.ErrNotBack (until 2026-12-08 it gave up silently, exit 0).
//
// -h, -help or --help as the command or among a command's flags prints the
// usage, exit 0; after the function, where the ids go, it is a usage error
// like any other dash (until 2026-12-08 it meant help anywhere, so a
// script's replay of an id "-h" did nothing and succeeded).
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
	"flag"
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
  deadletters list [-limit N] [function...]       (the first N messages of each DLQ [50]; 0: every one)
  deadletters inspect <function> <event-id>
  deadletters replay [-type T] [-older-than D] <function> <event-id>...|all
  deadletters purge [-type T] [-older-than D] <function> <event-id>...|all
             all: the messages there when it starts, each once; -type: of event type (or routing key) T;
             -older-than: dead-lettered more than D (1h, 30m) ago; flags go before the function
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
	// Asked for, alone or among a command's flags (replay -h,
	// flag.ErrHelp to its flag set), the usage is an answer, not an error
	// (exit 0), and needs no configuration. Nothing is acted on. After
	// the function, where the ids go, -h is a usage error as any other
	// dash is: a script's `replay fn "$ID"` with ID=-h must not succeed
	// having done nothing (until 2026-12-08 -h anywhere meant help).
	help := func() error {
		_, err := fmt.Fprintln(out, usage)
		return err
	}
	if len(args) == 0 {
		return errors.New(usage)
	}
	cmd, rest := args[0], args[1:]
	if isHelp(cmd) || cmd == "inspect" && len(rest) > 0 && isHelp(rest[0]) {
		return help()
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // a mistake answers with the usage below
	limit := fs.Int("limit", 50, "")
	typ := fs.String("type", "", "")
	olderThan := fs.Duration("older-than", 0, "")
	switch cmd {
	case "list", "replay", "purge":
		if err := fs.Parse(rest); errors.Is(err, flag.ErrHelp) {
			return help()
		} else if err != nil {
			return errors.New(usage)
		}
		rest = fs.Args()
		// Each flag belongs to its commands: a -limit on a purge, or
		// a -type on a list, would be silently ignored.
		wrong := false
		fs.Visit(func(f *flag.Flag) { wrong = wrong || (f.Name == "limit") != (cmd == "list") })
		if wrong {
			return errors.New(usage)
		}
	case "inspect":
	default:
		return errors.New(usage)
	}
	for _, a := range rest {
		if strings.HasPrefix(a, "-") {
			// A flag after the function ("list fn1 -limit 0") would
			// be read as a function or an event id.
			return errors.New(usage)
		}
	}
	var sel broker.Selection
	if cmd == "replay" || cmd == "purge" {
		// An empty id is a usage error, never "every message": a shell
		// variable left unset must not purge or replay the whole DLQ.
		// all stands alone: "all evt-1" is a mistake, not a filter.
		if len(rest) < 2 || *olderThan < 0 || slices.Contains(rest[1:], "") ||
			(slices.Contains(rest[1:], "all") && len(rest) != 2) {
			return errors.New(usage)
		}
		if rest[1] != "all" {
			sel.IDs = rest[1:]
		}
		sel.Type = *typ
		if *olderThan > 0 {
			sel.FailedBefore = time.Now().Add(-*olderThan)
		}
	}
	if cmd == "list" && *limit < 0 || cmd == "inspect" && (len(rest) != 2 || rest[1] == "") {
		return errors.New(usage)
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
		return list(conn, names, fns, len(rest) > 0, *limit, out)
	case "inspect":
		return inspect(ctx, conn, names, rest[0], rest[1], out)
	case "replay":
		taken, err := broker.ReplaySelected(ctx, conn, names, rest[0], sel)
		fmt.Fprintf(out, "replayed %d message(s) to %s\n", taken.Count, names.Queue(rest[0]))
		return errors.Join(err, missing(sel.IDs, taken, names.DLQ(rest[0]), "replayed"))
	default:
		taken, err := broker.PurgeSelected(ctx, conn, names, rest[0], sel)
		fmt.Fprintf(out, "purged %d message(s) from %s\n", taken.Count, names.DLQ(rest[0]))
		return errors.Join(err, missing(sel.IDs, taken, names.DLQ(rest[0]), "purged"))
	}
}

// missing is the error naming the ids the command was given that it did
// not find in the DLQ (nil when it found each): a misspelt id must not
// read as done.
func missing(ids []string, taken broker.Taken, dlq, did string) error {
	var none []string
	for _, id := range ids {
		if taken.ByID[id] == 0 {
			none = append(none, id)
		}
	}
	if len(none) == 0 {
		return nil
	}
	return fmt.Errorf("no message %s in %s: not %s", strings.Join(none, ", "), dlq, did)
}

// isHelp reports whether arg asks for the usage, as the flag package reads
// it (flag.ErrHelp).
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
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
// DLQ yet (its connector has not declared it) has 0. A DLQ whose messages
// did not all come back after the look (broker.ErrNotBack) is listed as
// read, and the command fails after the last function, saying so.
func list(conn *amqp.Connection, names broker.Names, fns []string, named bool, limit int, out io.Writer) (err error) {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	defer tw.Flush()
	var notBack []error
	defer func() { err = cmp.Or(err, errors.Join(notBack...)) }()
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
		show := limit
		if show == 0 {
			show = n // every message
		}
		dls, err := broker.PeekDeadLetters(conn, names, fn, show)
		if errors.Is(err, broker.ErrNotBack) {
			notBack = append(notBack, err)
		} else if err != nil {
			return err
		}
		for _, d := range dls {
			fmt.Fprintf(tw, "  %s\t%s\tattempts=%d\tlast_status=%d\t%s\n", d.ID, cmp.Or(d.Type, d.Topic), d.Attempts, d.LastStatus, d.FailedAt)
		}
		if n > len(dls) {
			fmt.Fprintf(tw, "  … %d more (-limit 0 lists every one)\n", n-len(dls))
		}
	}
	return nil
}

func inspect(ctx context.Context, conn *amqp.Connection, names broker.Names, fn, id string, out io.Writer) error {
	d, ok, err := broker.FindDeadLetter(ctx, conn, names, fn, id)
	if err != nil && !errors.Is(err, broker.ErrNotBack) {
		return err
	}
	if !ok {
		return errors.Join(fmt.Errorf("no message %s in %s", id, names.DLQ(fn)), err)
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
	return err // nil, or broker.ErrNotBack: shown, but the messages read before it are not all back
}
