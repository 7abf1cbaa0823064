package faaslocal

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/shopfaas/shop/dev/faaslocal/edge"
	"github.com/shopfaas/shop/dev/faaslocal/secrets"
	"github.com/shopfaas/shop/internal/loopback"
	"github.com/shopfaas/shop/internal/telemetry"
)

// edgeService is the service.name of the edge's spans, as gateway/kong.yml
// names Kong's (the opentelemetry plugin's resource_attributes).
const edgeService = "kong"

// gatewayHost is the gateway's host:port in the Kong file (its compose name).
const gatewayHost = "gateway:8080"

// startEdge serves the Kong file on EdgeAddr, in front of the gateway API.
// With Config.OTLPEndpoint its opentelemetry plugin exports a server span per
// request there, as Kong does.
func (rt *Runtime) startEdge(ctx context.Context) error {
	decl, err := edge.Load(rt.path(rt.cfg.KongFile))
	if err != nil {
		return err
	}
	opts, err := edgeOptions(rt.cfg, rt.secrets, rt.gateway.addr())
	if err != nil {
		return err
	}
	// The gateway runs in this process: the edge hands it requests directly
	// rather than over a loopback connection (Kong, in production, is a
	// process of its own and proxies over HTTP, which is what the edge does
	// without this).
	opts.Local = map[string]http.Handler{gatewayHost: rt.gateway.inProcess()}
	opts.Registry, rt.edgeFailures, rt.edgeSpans, err = edgeTracing(ctx, rt.cfg.OTLPEndpoint, rt.cfg.Log)
	if err != nil {
		return err
	}
	if rt.edgeSpans != nil {
		opts.TracerProvider = rt.edgeSpans
	}
	if rt.edge, err = edge.New(decl, opts); err != nil {
		return err
	}
	ln, err := listen("edge", rt.cfg.EdgeAddr)
	if err != nil {
		return err
	}
	rt.edgeServer = serve(ln, loopback.Only("the local edge", rt.edge), rt.cfg.Log)
	return nil
}

// edgeTracing is the edge's telemetry, as a function's (fnserve): reg, the
// registry of the edge's metrics (edge.Options.Registry), holds
// shop_telemetry_export_failures_total{signal="traces"}, at 0 from the
// start with or without otlp; tp, the provider of the opentelemetry
// plugin's spans, exports them to otlp (nil without otlp) and counts each
// failed batch there, which failures also logs on log at WARN, at most once
// a minute (call failures.Unlogged after tp's shutdown).
func edgeTracing(ctx context.Context, otlp string, log *slog.Logger) (reg *prometheus.Registry, failures *telemetry.ExportFailures, tp *sdktrace.TracerProvider, err error) {
	reg = prometheus.NewRegistry()
	failures = telemetry.NewExportFailures(reg, log.With("service", edgeService))
	if otlp == "" {
		return reg, failures, nil, nil
	}
	tp, err = telemetry.NewProvider(ctx, edgeService, func(k string) string {
		return TelemetryEnv(nil, otlp)[k]
	}, telemetry.ReportExportFailures(failures))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("edge spans: %w", err)
	}
	return reg, failures, tp, nil
}

// KongRedisPasswordSecret is the secret of Kong's Redis ACL user kong
// (docker-compose.yml exports it as SHOP_REDIS_KONG_PASSWORD), which the
// local edge reads in Kong's place. It is not the functions'
// redisconn.PasswordSecret.
const KongRedisPasswordSecret = "redis-kong-password"

// edgeOptions points the Kong file's names at this runtime: its services'
// gateway:8080 is the gateway API's address, the rate-limiting plugin's
// redis:6379 is the functions' REDIS_ADDR (Config.Env, then
// env/development.yml, else 127.0.0.1:6379; never the host environment,
// which the functions do not inherit), {vault://env/SHOP_JWT_VERIFY_KEY}
// is the jwt-verify-key secret (the public key), as a production deploy
// renders it for Kong, and {vault://env/SHOP_REDIS_KONG_PASSWORD} is the
// redis-kong-password secret, as docker-compose.yml exports it for Kong
// (empty or absent, the default: no AUTH, and so no ACL user, as the
// functions: the machine's Redis has no ACL users); other vault references
// come from the host environment.
func edgeOptions(cfg Config, store *secrets.Store, gatewayAddr string) (edge.Options, error) {
	env, err := serviceEnv(cfg.Root, cfg.Env)
	if err != nil {
		return edge.Options{}, err
	}
	redisAddr := cmp.Or(env["REDIS_ADDR"], "127.0.0.1:6379")
	return edge.Options{
		Upstreams: map[string]string{gatewayHost: gatewayAddr, "redis:6379": redisAddr},
		Log:       cfg.Log,
		Getenv: func(name string) string {
			switch name {
			case "SHOP_JWT_VERIFY_KEY":
				v, _ := store.Read("jwt-verify-key")
				return strings.TrimSpace(string(v)) // as the functions read it (internal/config)
			case "SHOP_REDIS_KONG_PASSWORD":
				v, _ := store.Read(KongRedisPasswordSecret)
				return strings.TrimSpace(string(v))
			}
			return cfg.Getenv(name)
		},
	}, nil
}
