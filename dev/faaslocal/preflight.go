package faaslocal

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/openfaas/go-sdk/stack"

	"github.com/shopfaas/shop/dev/stackfile"
	"github.com/shopfaas/shop/internal/broker"
)

// serviceEnv is where the functions, connectors and seed find the services:
// env/development.yml, overrides (Config.Env) winning. The host environment
// is not read: processes never inherit REDIS_ADDR, RABBITMQ_URL or a
// database URL from it (hostVars), so neither do the checks.
func serviceEnv(root string, overrides map[string]string) (map[string]string, error) {
	env, err := stackfile.Environment(root, stack.Function{EnvironmentFile: []string{connectorEnvFile}})
	if err != nil {
		return nil, err
	}
	maps.Copy(env, overrides)
	return env, nil
}

// Preflight checks, before anything is built or started, that PostgreSQL,
// Redis and RabbitMQ answer at the addresses the functions and connectors
// will use: env/development.yml, overrides (Config.Env) winning, never the
// host environment, which the processes do not inherit. Every service that
// does not answer is named in the error, with the variable it came from and
// what to do.
func Preflight(ctx context.Context, root string, overrides map[string]string) error {
	env, err := serviceEnv(root, overrides)
	if err != nil {
		return err
	}
	value := func(key, def string) string { return cmp.Or(env[key], def) }

	type service struct{ name, addr, from string }
	var services []service
	seen := map[string]bool{}
	for _, key := range slices.Sorted(func(yield func(string) bool) {
		for k := range env {
			if !yield(k) {
				return
			}
		}
	}) {
		if !strings.HasSuffix(key, "_DATABASE_URL") {
			continue
		}
		if u, err := url.Parse(value(key, "")); err == nil && u.Host != "" && !seen[u.Host] {
			seen[u.Host] = true
			services = append(services, service{"PostgreSQL", hostPort(u.Host, "5432"), key})
		}
	}
	services = append(services, service{"Redis", value("REDIS_ADDR", "127.0.0.1:6379"), "REDIS_ADDR"})
	if u, err := url.Parse(value("RABBITMQ_URL", broker.DefaultURL)); err == nil {
		services = append(services, service{"RabbitMQ", hostPort(u.Host, "5672"), "RABBITMQ_URL"})
	}

	var errs []error
	d := net.Dialer{Timeout: 2 * time.Second}
	for _, s := range services {
		c, err := d.DialContext(ctx, "tcp", s.addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s is not answering at %s (%s): start it with make services, or edit %s in %s", s.name, s.addr, s.from, s.from, connectorEnvFile))
			continue
		}
		_ = c.Close()
	}
	if len(errs) > 0 {
		return fmt.Errorf("preflight: %w", errors.Join(errs...))
	}
	return nil
}

// hostPort adds the default port to a host without one.
func hostPort(host, port string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	return net.JoinHostPort(host, port)
}
