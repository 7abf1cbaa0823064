package kubecheck_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"

	"github.com/shopfaas/shop/dev/deploycheck"
	"github.com/shopfaas/shop/dev/faaslocal/edge"
	"github.com/shopfaas/shop/dev/kongcheck"
	"github.com/shopfaas/shop/dev/kubecheck"
	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/broker"
	deliveries "github.com/shopfaas/shop/internal/connector"
	"github.com/shopfaas/shop/internal/routes"
	"github.com/shopfaas/shop/internal/telemetry"
)

const root = "../.."

func read(tb testing.TB, rel string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// connector is what the sources of truth say of one connector.
type connector struct {
	// name is the Deployment's, its container's, its pod label app's and
	// its docker-compose.yml service's.
	name string
	// reads are the secret files its code reads (its main.go): required
	// ones and optional ones alike.
	reads []string
	// kubeOnly are the variables set on Kubernetes only, each documented in
	// docs/deploy-kubernetes.md, "Connectors".
	kubeOnly []string
	// stop is the longest its stop takes, which its grace period must
	// outlast; nil for one that waits for nothing.
	stop kubecheck.StopTakes
}

var basicAuth = []string{"basic-auth-user", "basic-auth-password"} // config.Reader.GatewayBasicAuth

func connectors() []connector {
	return []connector{
		{name: "outbox-relay", reads: []string{"event-signing-key", "db-password-relay", broker.PasswordSecret}},
		{name: "rabbitmq-connector", reads: append([]string{auth.CredentialSecret(routes.CallerRabbitMQ), broker.PasswordSecret}, basicAuth...),
			kubeOnly: []string{"FUNCTION_URL_TEMPLATE"}, stop: deliveries.LongestStop},
		{name: "scheduler", reads: append([]string{auth.CredentialSecret(routes.CallerScheduler)}, basicAuth...),
			stop: kubecheck.InvokeTimeoutAnd(telemetry.FlushTimeout)},
	}
}

// scrapeConfig is faasd's Prometheus configuration, whose connectors job the
// Kubernetes scrape job reproduces (docs/deploy-kubernetes.md, "Monitoring").
const scrapeConfig = "monitoring/prometheus.yml"

// findings runs every check of the folder dir (a copy of deploy/kubernetes,
// or the folder itself) against the repository's sources of truth, the
// scrape configuration read from the file scrape.
func findings(t *testing.T, dir, scrape string) []error {
	t.Helper()
	m, err := kubecheck.Load(dir)
	if err != nil {
		return []error{err}
	}
	compose, err := deploycheck.LoadCompose(read(t, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	add := func(e ...error) { errs = append(errs, e...) }

	k, err := os.ReadFile(filepath.Join(dir, kubecheck.KustomizationFile))
	if err != nil {
		t.Fatal(err)
	}
	if kust, err := kubecheck.LoadKustomization(k); err != nil {
		add(err)
	} else {
		var built []string // the connectors' images, built from connectors/<dir>/Dockerfile
		for _, c := range connectors() {
			built = append(built, deploycheck.Resolve(compose.Services[c.name].Image))
		}
		add(kubecheck.CheckKustomization(kust, m, built...)...)
	}

	for _, c := range connectors() {
		d := m.Deployments["openfaas/"+c.name]
		if d == nil {
			add(fmt.Errorf("no Deployment openfaas/%s", c.name))
			continue
		}
		svc := compose.Services[c.name]
		ctr, err := kubecheck.Container(d, c.name)
		if err != nil {
			add(err)
			continue
		}
		if want := deploycheck.Resolve(svc.Image); ctr.Image != want {
			add(fmt.Errorf("deployment %s: image %s, want docker-compose.yml's default %s (kustomization.yaml's images: replaces it)", c.name, ctr.Image, want))
		}
		add(kubecheck.CheckConnectorEnv(c.name, ctr, svc, c.kubeOnly...)...)
		files, err := kubecheck.SecretFiles(d, ctr, svc.Environment["SECRETS_DIR"])
		if err != nil {
			add(err)
		} else {
			add(kubecheck.CheckSecretFiles(c.name, files, svc, c.reads...)...)
			for f := range files {
				if strings.HasPrefix(f, "internal-token-") && f != auth.CredentialSecret(c.name) {
					add(fmt.Errorf("deployment %s: mounts %s, another caller's credential", c.name, f))
				}
				if f == "event-signing-key" && c.name != "outbox-relay" {
					add(fmt.Errorf("deployment %s: mounts event-signing-key, which only the relay gets", c.name))
				}
			}
		}
		add(kubecheck.CheckPodLabels(d, map[string]string{"app": c.name})...)
		add(kubecheck.CheckPodSecurity(d)...)
		if _, ok := svc.Environment["METRICS_ADDR"]; ok {
			add(kubecheck.CheckMetricsProbe(c.name, ctr)...)
		}
		if c.stop != nil {
			add(kubecheck.CheckStopGrace(d, ctr, c.stop)...)
		}
	}
	if d := m.Deployments["openfaas/scheduler"]; d != nil {
		add(kubecheck.CheckSingleton(d)...)
	}

	// The connectors job of monitoring/prometheus.yml: each target's host is
	// the pod label app the Kubernetes scrape job keeps and puts back as
	// instance, its port the connector's METRICS_ADDR; every connector whose
	// compose service sets METRICS_ADDR is one of them.
	jobs, err := deploycheck.JobTargets(readFile(t, scrape))
	if err != nil {
		t.Fatal(err)
	}
	var serving []string
	for _, c := range connectors() {
		if _, ok := compose.Services[c.name].Environment["METRICS_ADDR"]; ok {
			serving = append(serving, c.name)
		}
	}
	add(kubecheck.CheckScrapeJob(m, jobs["connectors"], serving...)...)

	add(kongFindings(m, compose)...)
	add(kubecheck.CheckFlows(m.NetworkPolicies, allowedFlows(), deniedFlows())...)
	return errs
}

// kongFindings holds Kong's Deployment and Service against docker-compose.yml's
// kong service and gateway/kong.yml.
func kongFindings(m *kubecheck.Manifests, compose deploycheck.Compose) []error {
	d := m.Deployments["openfaas/kong"]
	if d == nil {
		return []error{errors.New("no Deployment openfaas/kong")}
	}
	svc := compose.Services["kong"]
	ctr, err := kubecheck.Container(d, "kong")
	if err != nil {
		return []error{err}
	}
	var errs []error
	if ctr.Image != svc.Image {
		errs = append(errs, fmt.Errorf("kong: image %s, docker-compose.yml's %s", ctr.Image, svc.Image))
	}
	kongYML, err := os.ReadFile(filepath.Join(root, "gateway/kong.yml"))
	if err != nil {
		return append(errs, err)
	}
	errs = append(errs, kubecheck.CheckKongEnv(ctr, svc, deploycheck.KongVaultEnv(kongYML))...)
	errs = append(errs, kubecheck.CheckPodLabels(d, map[string]string{"app": "kong"})...)
	errs = append(errs, kubecheck.CheckPodSecurity(d)...)
	// Its root filesystem read-only, Kong writes only to emptyDirs: its
	// prefix and /tmp.
	for what, dir := range map[string]string{kubecheck.KongPrefixEnv: kubecheck.Env(ctr, kubecheck.KongPrefixEnv), "/tmp": "/tmp"} {
		if v, ok := kubecheck.WritableAt(d, ctr, dir); !ok || v.EmptyDir == nil {
			errs = append(errs, fmt.Errorf("kong: %s (%q) is not on an emptyDir mounted writable in the container: its root filesystem is read-only", what, dir))
		}
	}
	// The declarative file from the generated ConfigMap's kong.yml; the TLS
	// pair from a Secret, under the names KONG_SSL_CERT and _KEY give.
	declarative := kubecheck.Env(ctr, "KONG_DECLARATIVE_CONFIG")
	if v, sub, ok := kubecheck.MountedAt(d, ctr, declarative); !ok || v.ConfigMap == nil || sub != "kong.yml" {
		errs = append(errs, fmt.Errorf("kong: KONG_DECLARATIVE_CONFIG %s is not the key kong.yml of a ConfigMap", declarative))
	}
	cert := kubecheck.Env(ctr, "KONG_SSL_CERT")
	certDir := filepath.Dir(cert)
	if v, _, ok := kubecheck.MountedAt(d, ctr, certDir); !ok || v.Secret == nil ||
		filepath.Base(cert) != corev1.TLSCertKey || kubecheck.Env(ctr, "KONG_SSL_CERT_KEY") != filepath.Join(certDir, corev1.TLSPrivateKeyKey) {
		errs = append(errs, fmt.Errorf("kong: KONG_SSL_CERT and KONG_SSL_CERT_KEY are not %s and %s of a TLS Secret mounted at %s", corev1.TLSCertKey, corev1.TLSPrivateKeyKey, certDir))
	}
	// Only HTTPS is public, on 443, to Kong's TLS listener (8443, compose's
	// one published on all interfaces), which Kong's port map names; from
	// the client's own address, which kong.yml's per-IP limits count.
	s := m.Services["openfaas/kong"]
	switch {
	case s == nil:
		errs = append(errs, errors.New("no Service openfaas/kong"))
	case s.Spec.Type != corev1.ServiceTypeLoadBalancer || len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != 443:
		errs = append(errs, errors.New("service kong: want a LoadBalancer with the one port 443"))
	default:
		if target := kubecheck.PortNumber(ctr, s.Spec.Ports[0].TargetPort); target != "8443" {
			errs = append(errs, fmt.Errorf("service kong: port 443 goes to %s, not Kong's TLS listener 8443", target))
		}
		if s.Spec.Selector["app"] != "kong" {
			errs = append(errs, errors.New("service kong: does not select app=kong"))
		}
		if p := s.Spec.ExternalTrafficPolicy; p != corev1.ServiceExternalTrafficPolicyLocal {
			errs = append(errs, fmt.Errorf("service kong: externalTrafficPolicy %q, want Local: with Cluster, the default, a node replaces the client's address with its own, and kong.yml's per-IP limits count every client together", p))
		}
		// With Local a node serves only through a Kong pod of its own,
		// until the balancer's health check sees it has none: a pod that
		// stops must keep serving meanwhile and quit gracefully, giving
		// the calls under way as long as Kong waits for a function.
		longestRead, err := kubecheck.KongLongestRead(kongYML)
		if err != nil {
			return append(errs, err)
		}
		errs = append(errs, kubecheck.CheckKongDrain(d, ctr, m.DisruptionBudgets, longestRead)...)
		// And a pod that starts must not count as available before the
		// balancer sends to its node.
		errs = append(errs, kubecheck.CheckKongMinReady(d)...)
		errs = append(errs, kubecheck.CheckKongPortMaps(ctr, s)...)
	}
	return errs
}

// The model of the NetworkPolicy paragraph of docs/deploy-kubernetes.md:
// the pods (the chart's gateway is labelled app: gateway; faas-netes labels
// a function's pods faas_function) and "your Prometheus", as the policies'
// comments name it.
var (
	gateway    = kubecheck.Pod{Name: "gateway", Namespace: "openfaas", Labels: map[string]string{"app": "gateway"}}
	kong       = kubecheck.Pod{Name: "kong", Namespace: "openfaas", Labels: map[string]string{"app": "kong"}}
	relay      = kubecheck.Pod{Name: "outbox-relay", Namespace: "openfaas", Labels: map[string]string{"app": "outbox-relay"}}
	rabbit     = kubecheck.Pod{Name: "rabbitmq-connector", Namespace: "openfaas", Labels: map[string]string{"app": "rabbitmq-connector"}}
	scheduler  = kubecheck.Pod{Name: "scheduler", Namespace: "openfaas", Labels: map[string]string{"app": "scheduler"}}
	fn         = kubecheck.Pod{Name: "create-order", Namespace: "openfaas-fn", Labels: map[string]string{"faas_function": "create-order"}}
	callee     = kubecheck.Pod{Name: "reserve-stock", Namespace: "openfaas-fn", Labels: map[string]string{"faas_function": "reserve-stock"}}
	prometheus = kubecheck.Pod{Name: "prometheus", Namespace: "monitoring", Labels: map[string]string{"app.kubernetes.io/name": "prometheus"}}
	stranger   = kubecheck.Pod{Name: "another-app", Namespace: "default", Labels: map[string]string{"app": "gateway"}}
	internet   = kubecheck.Pod{Name: "internet", External: true}
	// A pod in openfaas-fn that is not a function (a debugging pod).
	notAFunction = kubecheck.Pod{Name: "debug", Namespace: "openfaas-fn", Labels: map[string]string{"app": "debug"}}
)

func allowedFlows() []kubecheck.Flow {
	return []kubecheck.Flow{
		{From: kong, To: gateway, Port: 8080},
		{From: gateway, To: fn, Port: 8080},
		{From: fn, To: callee, Port: 8080},     // FUNCTION_URL_TEMPLATE
		{From: rabbit, To: callee, Port: 8080}, // FUNCTION_URL_TEMPLATE
		{From: fn, To: gateway, Port: 8080},    // GATEWAY_URL, the fallback
		{From: rabbit, To: gateway, Port: 8080},
		{From: scheduler, To: gateway, Port: 8080},
		{From: prometheus, To: fn, Port: 8080},
		{From: prometheus, To: relay, Port: 9464},
		{From: prometheus, To: rabbit, Port: 9464},
		{From: prometheus, To: kong, Port: 8100},
		{From: internet, To: kong, Port: 8443},
	}
}

func deniedFlows() []kubecheck.Flow {
	return []kubecheck.Flow{
		{From: kong, To: fn, Port: 8080}, // the edge goes through the gateway
		{From: relay, To: fn, Port: 8080},
		{From: scheduler, To: fn, Port: 8080}, // it invokes through the gateway
		{From: stranger, To: fn, Port: 8080},
		{From: notAFunction, To: fn, Port: 8080},
		{From: gateway, To: fn, Port: 8082}, // the function's own port, behind the watchdog
		{From: internet, To: relay, Port: 9464},
		{From: stranger, To: rabbit, Port: 9464},
		{From: internet, To: kong, Port: 8000},
		{From: internet, To: kong, Port: 8100},
	}
}

func TestTheManifestsMatchTheirSourcesOfTruth(t *testing.T) {
	for _, err := range findings(t, filepath.Join(root, kubecheck.Dir), filepath.Join(root, scrapeConfig)) {
		t.Error(err)
	}
}

// The rendered kong.yml is gateway/kong.yml with only what
// render-config.sh says it changes: undoing those gives the file back, and
// what it renders loads as a Kong declarative file whose jwt credential holds
// the key.
func TestKongConfigIsRenderedFromGatewayKong(t *testing.T) {
	out, verify, err := renderKong(t)
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	decl, err := edge.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := decl.Consumers; len(got) == 0 {
		t.Fatal("no consumer in the rendered file")
	}
	var keys []string
	for _, c := range decl.Consumers {
		for _, j := range c.JWTSecrets {
			keys = append(keys, j.RSAPublicKey)
		}
	}
	if len(keys) != 1 || strings.TrimSpace(keys[0]) != strings.TrimSpace(verify) {
		t.Errorf("the rendered jwt credentials hold %q, want the one public key", keys)
	}
	escaped := strings.ReplaceAll(verify, "\n", `\n`)
	back := strings.NewReplacer(
		"http://gateway.openfaas:8080/", "http://gateway:8080/",
		"host: redis.example.internal\n", "host: redis\n",
		"port: 6380\n", "port: 6379\n",
		"http://jaeger.observability.svc.cluster.local:4318/", "http://jaeger:4318/",
		escaped, "{vault://env/shop-jwt-verify-key}",
	).Replace(string(rendered))
	if want := string(read(t, "gateway/kong.yml")); back != want {
		t.Errorf("the rendered file differs from gateway/kong.yml in more than the documented replacements:\n%s", firstDiff(back, want))
	}
	for _, faasd := range []string{"//gateway:", "host: redis\n", "//jaeger:", "{vault://env/shop-jwt-verify-key}"} {
		if strings.Contains(string(rendered), faasd) {
			t.Errorf("the rendered file still holds %q", faasd)
		}
	}
}

// renderKong runs render-config.sh with example hosts and a fresh public
// key, env added to its environment, and returns the file it wrote and the
// key.
func renderKong(t *testing.T, env ...string) (out, verify string, err error) {
	t.Helper()
	dir := t.TempDir()
	_, verify, err = auth.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "jwt-verify-key")
	if err := os.WriteFile(keyFile, []byte(verify), 0o600); err != nil {
		t.Fatal(err)
	}
	out = filepath.Join(dir, "kong.yml")
	cmd := exec.Command("sh", filepath.Join(kubecheck.Dir, "kong", "render-config.sh"))
	cmd.Dir = root
	cmd.Env = append(append(os.Environ(), "REDIS_HOST=redis.example.internal", "REDIS_PORT=6380",
		"OTLP_ENDPOINT=http://jaeger.observability.svc.cluster.local:4318", "JWT_VERIFY_KEY="+keyFile, "OUT="+out), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return out, verify, fmt.Errorf("render-config.sh: %w\n%s", err, b)
	}
	return out, verify, nil
}

// render-config.sh refuses, with a non-zero exit, a message naming the
// problem and no file written, not even its temporary ones, what it cannot
// render: a kong.yml whose faasd addresses its replacements miss (Kong on
// Kubernetes would call a gateway, a collector or a Redis that does not
// resolve there), a verify-key file that holds no public key (the signing key
// given by mistake), a KONG_YML it cannot read, a TLS step that cannot
// write its file, and a REDIS_HOST that is not a host name or a REDIS_PORT
// that is not a port number (either is written into every redis: block).
func TestKongConfigRenderingRefusesWhatItCannotRender(t *testing.T) {
	kongYML := filepath.Join(root, "gateway", "kong.yml")
	planted := func(old, new string) []string {
		return []string{"KONG_YML=" + editedCopy(t, kongYML, func(s string) string { return strings.Replace(s, old, new, 1) })}
	}
	missing := filepath.Join(t.TempDir(), "missing.yml")
	privateKey := filepath.Join(t.TempDir(), "jwt-signing-key")
	if err := os.WriteFile(privateKey, []byte("-----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  []string
		// dir is a directory made in the output directory before the run.
		dir  string
		want []string
	}{
		{"a gateway URL without its path", planted("url: http://gateway:8080/function/register-user", "url: http://gateway:8080"),
			"", []string{"url: http://gateway:8080\n", "the lines above still name faasd's services"}},
		{"a collector endpoint without its path", planted("traces_endpoint: http://jaeger:4318/v1/traces", "traces_endpoint: http://jaeger:4318"),
			"", []string{"traces_endpoint: http://jaeger:4318\n", "the lines above still name faasd's services"}},
		// A Redis block in flow style: the host and port lines' rewriting
		// misses it, Kong would call redis:6379.
		{"a redis block in flow style", planted("redis:\n            host: redis\n            port: 6379\n            username: kong\n            password: \"{vault://env/shop-redis-kong-password}\"",
			`redis: {host: redis, port: 6379, username: kong, password: "{vault://env/shop-redis-kong-password}"}`),
			"", []string{"redis: {host: redis, port: 6379,", "the lines above still name faasd's services"}},
		// A quoted key, or a blank before the colon: not rewritten either.
		{"a quoted host key", planted("            host: redis\n", "            \"host\": redis\n"),
			"", []string{`"host": redis`, "the lines above still name faasd's services"}},
		{"a blank before the host's colon", planted("            host: redis\n", "            host : redis\n"),
			"", []string{"host : redis", "the lines above still name faasd's services"}},
		{"a quoted port key, another port", append(planted("            port: 6379\n", "            'port': 6379\n"), "REDIS_PORT=6380"),
			"", []string{"'port': 6379", "the lines above still name faasd's services"}},
		// Only a redis: block's host and port are Redis's: a host: redis
		// elsewhere (here beside the block, in the plugin's config) is left
		// as it is, and so refused.
		{"a host: redis outside a redis block", planted("          policy: redis\n          redis:\n", "          policy: redis\n          host: redis\n          redis:\n"),
			"", []string{"          host: redis\n", "the lines above still name faasd's services"}},
		// The same line after a redis block, at the indentation of the
		// block's redis: key: the block ended there, so the line is not
		// the block's and is refused.
		{"a host: redis after a redis block", planted("          fault_tolerant: true\n", "          host: redis\n          fault_tolerant: true\n"),
			"", []string{"          host: redis\n", "the lines above still name faasd's services"}},
		// REDIS_HOST and REDIS_PORT are written into every redis: block:
		// a newline would add lines of YAML to each.
		{"no REDIS_HOST", []string{"REDIS_HOST="}, "", []string{"set REDIS_HOST"}},
		{"a REDIS_HOST of two lines", []string{"REDIS_HOST=redis.example.internal\nssl_verify: false"}, "", []string{redisHostRefused}},
		{"a REDIS_HOST with its port", []string{"REDIS_HOST=redis.example.internal:6380"}, "", []string{redisHostRefused}},
		{"a REDIS_HOST with a blank", []string{"REDIS_HOST=redis.example.internal # faasd"}, "", []string{redisHostRefused}},
		{"a REDIS_HOST with a pipe", []string{"REDIS_HOST=redis|x"}, "", []string{redisHostRefused}},
		// With TLS, REDIS_HOST becomes server_name: a short alias is not
		// what a managed Redis's certificate names.
		{"TLS to a REDIS_HOST without a dot", []string{"REDIS_TLS=true", "REDIS_HOST=redis"}, "", []string{"with REDIS_TLS=true, REDIS_HOST must be the name Redis's certificate is for"}},
		{"a REDIS_PORT of two lines", []string{"REDIS_PORT=6380\nssl_verify: false"}, "", []string{redisPortRefused}},
		{"a REDIS_PORT not a number", []string{"REDIS_PORT=redis"}, "", []string{redisPortRefused}},
		{"a REDIS_PORT of 0", []string{"REDIS_PORT=0"}, "", []string{redisPortRefused}},
		{"a REDIS_PORT with a leading zero", []string{"REDIS_PORT=06380"}, "", []string{redisPortRefused}},
		{"a REDIS_PORT above 65535", []string{"REDIS_PORT=65536"}, "", []string{redisPortRefused}},
		{"a REDIS_PORT of six digits", []string{"REDIS_PORT=100000"}, "", []string{redisPortRefused}},
		{"a negative REDIS_PORT", []string{"REDIS_PORT=-1"}, "", []string{redisPortRefused}},
		{"the signing key as the verify key", []string{"JWT_VERIFY_KEY=" + privateKey}, "", []string{privateKey + " holds no PEM public key"}},
		{"no kong.yml", []string{"KONG_YML=" + missing}, "", []string{"missing.yml"}},
		{"no kong.yml, with TLS", []string{"KONG_YML=" + missing, "REDIS_TLS=true"}, "", []string{"missing.yml"}},
		// The TLS step fails after the first temporary file is written.
		{"the TLS step cannot write its file", []string{"REDIS_TLS=true"}, "kong.yml.tmp.tls", []string{"kong.yml.tmp.tls"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.dir != "" {
				if err := os.Mkdir(filepath.Join(dir, tc.dir), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			_, _, err := renderKong(t, append(tc.env, "OUT="+filepath.Join(dir, "kong.yml"))...)
			if err == nil {
				t.Fatal("rendered")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v\nwant the refusal to say %q", err, w)
				}
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if e.Name() != tc.dir {
					t.Errorf("%s written", filepath.Join(dir, e.Name()))
				}
			}
		})
	}
}

const (
	redisHostRefused = "REDIS_HOST must be a host name: letters, digits, dots and hyphens only"
	redisPortRefused = "REDIS_PORT must be a port number, 1 to 65535"
)

// Every port from 1 to 65535 is taken as it is.
func TestKongConfigRenderingTakesEveryPortNumber(t *testing.T) {
	for _, port := range []string{"1", "65535"} {
		out, _, err := renderKong(t, "REDIS_PORT="+port)
		if err != nil {
			t.Fatal(err)
		}
		want := strings.Count(string(read(t, "gateway/kong.yml")), "\n            port: 6379\n")
		if n := strings.Count(string(readFile(t, out)), "\n            port: "+port+"\n"); n != want || want == 0 {
			t.Errorf("REDIS_PORT=%s: %d redis blocks rendered with it, want gateway/kong.yml's %d", port, n, want)
		}
	}
}

// REDIS_HOST may be redis itself (an ExternalName Service redis in Kong's
// namespace, say): the rendered host: redis lines are then what was asked
// for, not faasd's name left behind, and the port is still rewritten.
func TestKongConfigRenderedForARedisNamedRedis(t *testing.T) {
	out, _, err := renderKong(t, "REDIS_HOST=redis")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Count(string(read(t, "gateway/kong.yml")), "\n            host: redis\n            port: 6379\n")
	rendered := string(readFile(t, out))
	if n := strings.Count(rendered, "\n            host: redis\n            port: 6380\n"); n != want || want == 0 {
		t.Errorf("%d redis blocks rendered with host redis and port 6380, want gateway/kong.yml's %d", n, want)
	}
}

// render-config.sh rewrites the rate limits' Redis host and port however
// the line is written in YAML, with trailing blanks, a comment or quotes,
// keeping the comment and the quotes: a line it left would have Kong on
// Kubernetes call redis:6379, a name only faasd resolves.
func TestKongConfigRenderingRewritesRedisHoweverWritten(t *testing.T) {
	kongYML := filepath.Join(root, "gateway", "kong.yml")
	tests := []struct{ name, old, new, want string }{
		{"host with trailing blanks", "host: redis\n", "host: redis \t \n", "host: redis.example.internal\n"},
		{"host with a comment", "host: redis\n", "host: redis # faasd\n", "host: redis.example.internal # faasd\n"},
		{"host with a tab before its comment", "host: redis\n", "host: redis\t# faasd\n", "host: redis.example.internal\t# faasd\n"},
		{"host double-quoted", "host: redis\n", "host: \"redis\"\n", "host: \"redis.example.internal\"\n"},
		{"host single-quoted, with a comment", "host: redis\n", "host: 'redis' # faasd\n", "host: 'redis.example.internal' # faasd\n"},
		{"port with trailing blanks", "port: 6379\n", "port: 6379  \n", "port: 6380\n"},
		{"port with a comment", "port: 6379\n", "port: 6379 # faasd\n", "port: 6380 # faasd\n"},
		{"port quoted", "port: 6379\n", "port: \"6379\"\n", "port: \"6380\"\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := editedCopy(t, kongYML, func(s string) string { return strings.Replace(s, tc.old, tc.new, 1) })
			out, _, err := renderKong(t, "KONG_YML="+in)
			if err != nil {
				t.Fatal(err)
			}
			rendered := string(readFile(t, out))
			if !strings.Contains(rendered, "\n            "+tc.want) {
				t.Errorf("no line %q in the rendered file", tc.want)
			}
			for i, line := range strings.Split(rendered, "\n") {
				switch key, value, _ := strings.Cut(strings.TrimSpace(line), ":"); key {
				case "host":
					if !strings.Contains(value, "redis.example.internal") || strings.Contains(strings.ReplaceAll(value, "redis.example.internal", ""), "redis") {
						t.Errorf("line %d: %q, want REDIS_HOST redis.example.internal", i+1, line)
					}
				case "port":
					if !strings.Contains(value, "6380") || strings.Contains(value, "6379") {
						t.Errorf("line %d: %q, want REDIS_PORT 6380", i+1, line)
					}
				}
			}
		})
	}
}

// With REDIS_TLS=true (a Redis that requires TLS) every rate limit kept in
// Redis gets ssl: true, ssl_verify: true and server_name: REDIS_HOST, and
// nothing else changes: removing those three lines gives the plain
// rendering back. REDIS_TLS other than true or false is refused.
func TestKongConfigRenderedForTLSRedisVerifiesEveryLimit(t *testing.T) {
	out, _, err := renderKong(t, "REDIS_TLS=true")
	if err != nil {
		t.Fatal(err)
	}
	decl, err := edge.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	limits := kongcheck.RedisLimits(decl)
	for _, l := range limits {
		if l.Redis["ssl"] != true || l.Redis["ssl_verify"] != true || l.Redis["server_name"] != "redis.example.internal" {
			t.Errorf("%s: redis ssl %v, ssl_verify %v, server_name %v; want true, true, redis.example.internal",
				l.Where, l.Redis["ssl"], l.Redis["ssl_verify"], l.Redis["server_name"])
		}
	}
	source, err := edge.Load(filepath.Join(root, "gateway", "kong.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := len(kongcheck.RedisLimits(source)); len(limits) != want || want == 0 {
		t.Errorf("%d redis rate limits rendered, want gateway/kong.yml's %d", len(limits), want)
	}
	plainOut, _, err := renderKong(t)
	if err != nil {
		t.Fatal(err)
	}
	tlsText := strings.NewReplacer("            ssl: true\n", "", "            ssl_verify: true\n", "",
		"            server_name: redis.example.internal\n", "").Replace(string(readFile(t, out)))
	// The key differs between the two renderings: compare without it.
	plainText := string(readFile(t, plainOut))
	cut := func(s string) string { return s[:strings.Index(s, "consumers:")] }
	if cut(tlsText) != cut(plainText) {
		t.Errorf("the TLS rendering differs from the plain one in more than the redis blocks' TLS lines:\n%s", firstDiff(cut(tlsText), cut(plainText)))
	}
	if _, _, err := renderKong(t, "REDIS_TLS=yes"); err == nil || !strings.Contains(err.Error(), "REDIS_TLS must be true or false") {
		t.Errorf("REDIS_TLS=yes: %v, want it refused", err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d: %q, want %q", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("%d lines, want %d", len(al), len(bl))
}

// Kong's command, run by sh as the kubelet hands it over ($$ made $), with
// Kong's start replaced: it strips the newline kubectl create secret
// --from-file keeps, and refuses a Redis password Redis would refuse
// without printing it.
func TestKongStartsOnlyWithAUsableRedisPassword(t *testing.T) {
	m, err := kubecheck.Load(filepath.Join(root, kubecheck.Dir))
	if err != nil {
		t.Fatal(err)
	}
	ctr, err := kubecheck.Container(m.Deployments["openfaas/kong"], "kong")
	if err != nil {
		t.Fatal(err)
	}
	if len(ctr.Command) != 3 || ctr.Command[0] != "/bin/sh" || ctr.Command[1] != "-c" {
		t.Fatalf("command %q, want /bin/sh -c SCRIPT", ctr.Command)
	}
	const start = "exec /docker-entrypoint.sh kong docker-start"
	script := strings.ReplaceAll(ctr.Command[2], "$$", "$")
	if !strings.HasSuffix(script, start) {
		t.Fatalf("the script does not end by starting Kong (%s)", start)
	}
	script = strings.TrimSuffix(script, start) + `printf '%s|%s' "$SHOP_REDIS_KONG_PASSWORD" "$SHOP_JWT_VERIFY_KEY"`
	run := func(password, key string) (string, error) {
		cmd := exec.Command("sh", "-c", script)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SHOP_REDIS_KONG_PASSWORD=" + password, "SHOP_JWT_VERIFY_KEY=" + key}
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	if out, err := run("0a1b2c\n", "-----BEGIN PUBLIC KEY-----\nAAA\n-----END PUBLIC KEY-----\n"); err != nil || out != "0a1b2c|-----BEGIN PUBLIC KEY-----\nAAA\n-----END PUBLIC KEY-----" {
		t.Errorf("a password file's trailing newline: %q, %v", out, err)
	}
	for _, bad := range []string{"", "pass word", "pa$$", "quote'd"} {
		out, err := run(bad, "key")
		if err == nil {
			t.Errorf("password %q: Kong would start", bad)
		}
		if bad != "" && strings.Contains(out, bad) {
			t.Errorf("password %q printed: %s", bad, out)
		}
		// A pod that exits without a word is a CrashLoopBackOff with an
		// empty log: the line names the secret's key.
		if !strings.Contains(out, "redis-kong-password") {
			t.Errorf("password %q: Kong stopped without naming redis-kong-password: %q", bad, out)
		}
	}
	if out, err := run("0a1b2c", ""); err == nil || !strings.Contains(out, "jwt-verify-key") {
		t.Errorf("without the public key: %q, %v; want Kong stopped, naming jwt-verify-key", out, err)
	}
}

// copyFolder copies deploy/kubernetes into a temporary folder, with edit
// applied to the file rel.
func copyFolder(t *testing.T, rel string, edit func(string) string) string {
	t.Helper()
	src, dst := filepath.Join(root, kubecheck.Dir), t.TempDir()
	changed := false
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, r), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if filepath.ToSlash(r) == rel {
			if e := edit(string(b)); e != string(b) {
				b, changed = []byte(e), true
			}
		}
		return os.WriteFile(filepath.Join(dst, r), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !changed {
		t.Fatalf("the edit changed nothing in %s", rel)
	}
	return dst
}

// editedCopy writes the file path, with edit applied, into a temporary
// folder and returns the copy's path.
func editedCopy(t *testing.T, path string, edit func(string) string) string {
	t.Helper()
	b := readFile(t, path)
	e := edit(string(b))
	if e == string(b) {
		t.Fatalf("the edit changed nothing in %s", path)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(out, []byte(e), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// Each mistake is caught, with a message naming it: a mistake in a file of
// deploy/kubernetes, or in the scrape configuration (scrapeConfig).
func TestEachMistakeFails(t *testing.T) {
	replace := func(old, new string) func(string) string {
		return func(s string) string { return strings.Replace(s, old, new, 1) }
	}
	const (
		relay     = "connectors/outbox-relay.yaml"
		rabbit    = "connectors/rabbitmq-connector.yaml"
		scheduler = "connectors/scheduler.yaml"
		kongFile  = "kong/kong.yaml"
		fnPolicy  = "network-policies/openfaas-fn.yaml"
		policy    = "network-policies/openfaas.yaml"
	)
	tests := []struct {
		name, file string
		edit       func(string) string
		want       string
	}{
		{"a misspelt field", relay, replace("readOnlyRootFilesystem:", "readOnlyRootFileSystem:"), `unknown field "spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem"`},
		{"an unknown field", kongFile, replace("  replicas: 2\n", "  replicas: 2\n  replica: 2\n"), `unknown field "spec.replica"`},
		{"a duplicate field", scheduler, replace("  replicas: 1\n", "  replicas: 1\n  replicas: 1\n"), `key "replicas" already set in map`},
		{"a value of the wrong type", relay, replace("containerPort: 9464", "containerPort: metrics"), "cannot unmarshal"},
		{"an unknown kind", policy, func(s string) string {
			return s + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: openfaas}\n"
		}, "v1 ConfigMap is not a kind"},
		{"no namespace", scheduler, replace("  namespace: openfaas\n", ""), "without metadata.name and metadata.namespace"},
		{"a file left out of the kustomization", kubecheck.KustomizationFile, replace("  - connectors/scheduler.yaml\n", ""), "want every manifest file"},
		{"kong's ConfigMap not generated", kubecheck.KustomizationFile, replace("name: kong-config", "name: kong-conf"), "ConfigMap kong-config is not generated"},
		{"a connector's image without its placeholder", kubecheck.KustomizationFile, replace("  - name: ghcr.io/shopfaas/scheduler\n", "  - name: ghcr.io/shopfaas/schedule\n"), "the image ghcr.io/shopfaas/scheduler is not under images:"},
		{"an unknown kustomization field", kubecheck.KustomizationFile, replace("configMapGenerator:", "configMapGenerators:"), "field configMapGenerators not found"},
		{"a variable dropped", relay, replace("            - name: LOG_LEVEL\n              value: info\n", ""), "docker-compose.yml's service sets LOG_LEVEL, the Deployment does not"},
		{"a variable added", scheduler, replace("            - name: LOG_LEVEL\n", "            - name: LOG_FORMAT\n              value: json\n            - name: LOG_LEVEL\n"), "sets LOG_FORMAT, which docker-compose.yml's service does not"},
		{"a value changed", rabbit, replace(`value: "5"`, `value: "7"`), `MAX_ATTEMPTS is "7", docker-compose.yml's "5"`},
		{"a compose host name", relay, replace("@pg.example.internal:5432/shop_orders", "@postgres:5432/shop_orders"), "host postgres is not fully qualified"},
		{"a short gateway name", scheduler, replace("http://gateway.openfaas:8080", "http://gateway:8080"), "host gateway is not fully qualified"},
		{"a secret in the environment", relay, replace("            - name: LOG_LEVEL\n              value: info\n", "            - name: LOG_LEVEL\n              valueFrom: {secretKeyRef: {name: x, key: log-level}}\n"), "LOG_LEVEL comes from valueFrom"},
		{"a secret not mounted", relay, replace("                    - {key: event-signing-key, path: event-signing-key}\n", ""), "reads the secret event-signing-key, which is not mounted"},
		{"another connector's token", scheduler, replace("{key: internal-token-scheduler, path: internal-token-scheduler}", "{key: internal-token-rabbitmq-connector, path: internal-token-rabbitmq-connector}"), "another caller's credential"},
		{"the signing key beside the relay", rabbit, replace("                    - {key: rabbitmq-password, path: rabbitmq-password}\n", "                    - {key: rabbitmq-password, path: rabbitmq-password}\n                    - {key: event-signing-key, path: event-signing-key}\n"), "only the relay gets"},
		{"a secret under another name", rabbit, replace("{key: rabbitmq-password, path: rabbitmq-password}", "{key: rabbitmq-password, path: broker-password}"), "the file must have the secret's name"},
		{"the scrape label missing", rabbit, replace("        app: rabbitmq-connector\n    spec:", "        app: rabbitmq\n    spec:"), `pod label app is "rabbitmq", want "rabbitmq-connector"`},
		{"the connector's grace period the default", rabbit, replace("      terminationGracePeriodSeconds: 50\n", ""), "deployment rabbitmq-connector: terminationGracePeriodSeconds 30, want more than the longest its stop takes, 45s"},
		{"the connector's grace period within its stop", rabbit, replace("terminationGracePeriodSeconds: 50", "terminationGracePeriodSeconds: 45"), "terminationGracePeriodSeconds 45, want more than the longest its stop takes, 45s"},
		{"the connector's invocations outlasting its grace period", rabbit, replace("            - name: STOP_TIMEOUT\n              value: 25s\n", ""), "terminationGracePeriodSeconds 50, want more than the longest its stop takes, 1m0s"},
		{"the connector's stop raised past its grace period", rabbit, replace("value: 25s", "value: 45s"), "deployment rabbitmq-connector: terminationGracePeriodSeconds 50, want more than the longest its stop takes, 1m5s"},
		{"the scheduler's grace period below its runs", scheduler, replace("terminationGracePeriodSeconds: 135", "terminationGracePeriodSeconds: 120"), "deployment scheduler: terminationGracePeriodSeconds 120, want more than the longest its stop takes, 2m5s"},
		{"the scheduler scaled", scheduler, replace("  replicas: 1\n", "  replicas: 2\n"), "replicas must be exactly 1"},
		{"the scheduler rolled", scheduler, replace("    type: Recreate", "    type: RollingUpdate"), "want Recreate"},
		{"root allowed", relay, replace("runAsNonRoot: true", "runAsNonRoot: false"), "runAsNonRoot must be true"},
		{"root uid", kongFile, replace("runAsUser: 1000", "runAsUser: 0"), "runAsUser must name a non-zero uid"},
		{"a writable root filesystem", scheduler, replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"), "readOnlyRootFilesystem must be true"},
		{"no requests", relay, replace("            requests:\n              cpu: 50m\n              memory: 64Mi\n", ""), "needs CPU and memory requests"},
		{"a probe on a path the connector does not serve", relay, replace("path: /metrics", "path: /healthz"), "the connector serves /metrics on 9464"},
		{"kong's body limit dropped", kongFile, replace("            - name: KONG_NGINX_HTTP_CLIENT_MAX_BODY_SIZE\n              value: 64k\n", ""), "sets KONG_NGINX_HTTP_CLIENT_MAX_BODY_SIZE, the Deployment does not"},
		{"kong's redis password in the manifest", kongFile, replace("            - name: SHOP_REDIS_KONG_PASSWORD\n              valueFrom:\n                secretKeyRef:\n                  name: kong-credentials\n                  key: redis-kong-password\n", "            - name: SHOP_REDIS_KONG_PASSWORD\n              value: hunter2\n"), "SHOP_REDIS_KONG_PASSWORD: set it from a Secret"},
		{"kong's image", kongFile, replace("image: docker.io/library/kong:3.9.0", "image: docker.io/library/kong:3.8.0"), "docker-compose.yml's docker.io/library/kong:3.9.0"},
		{"kong's TLS port not published", kongFile, replace("targetPort: proxy-tls", "targetPort: proxy"), "not Kong's TLS listener 8443"},
		{"kong's port map dropped", kongFile, replace("            - name: KONG_PORT_MAPS\n              value: \"443:8443\"\n", ""), `service kong publishes 443:8443, which KONG_PORT_MAPS ("") does not map`},
		{"kong's port map reversed", kongFile, replace(`value: "443:8443"`, `value: "8443:443"`), `KONG_PORT_MAPS maps 8443:443, which service kong does not publish`},
		{"kong's port map of a port not published", kongFile, replace(`value: "443:8443"`, `value: "443:8443, 80:8000"`), `KONG_PORT_MAPS maps 80:8000, which service kong does not publish`},
		{"kong's port map malformed", kongFile, replace(`value: "443:8443"`, `value: "443=8443"`), `KONG_PORT_MAPS: "443=8443" is not port:port`},
		{"kong's port map from a Secret", kongFile, replace("            - name: KONG_PORT_MAPS\n              value: \"443:8443\"\n", "            - name: KONG_PORT_MAPS\n              valueFrom: {secretKeyRef: {name: kong-credentials, key: port-maps}}\n"), `service kong publishes 443:8443, which KONG_PORT_MAPS ("") does not map`},
		{"a kong variable compose does not set", kongFile, replace("            - name: KONG_PORT_MAPS\n", "            - name: KONG_TRUSTED_IPS\n              value: 0.0.0.0/0\n            - name: KONG_PORT_MAPS\n"), "kong: sets KONG_TRUSTED_IPS, which neither docker-compose.yml's kong service nor kong.yml reads"},
		{"kong's Service replacing the client's address", kongFile, replace("  externalTrafficPolicy: Local\n", "  externalTrafficPolicy: Cluster\n"), `service kong: externalTrafficPolicy "Cluster", want Local`},
		{"kong's Service with the default traffic policy", kongFile, replace("  externalTrafficPolicy: Local\n", ""), `service kong: externalTrafficPolicy "", want Local`},
		{"kong stopped at once", kongFile, replace("          lifecycle:\n            preStop:\n              exec:\n                command: [kong, quit, --prefix=/kong_prefix, --wait=30, --timeout=45]\n", ""), "kong: no preStop"},
		{"kong's preStop not a command", kongFile, replace("              exec:\n                command: [kong, quit, --prefix=/kong_prefix, --wait=30, --timeout=45]\n", "              httpGet: {path: /status, port: status}\n"), "kong: the preStop is not an exec of kong quit"},
		{"kong's preStop a sleep", kongFile, replace("command: [kong, quit, --prefix=/kong_prefix, --wait=30, --timeout=45]", "command: [sleep, \"30\"]"), `kong: the preStop ["sleep" "30"] is not kong quit`},
		{"kong quitting without the wait", kongFile, replace(", --wait=30,", ","), "kong: the preStop's kong quit waits 0 s"},
		{"kong quitting after too short a wait", kongFile, replace("--wait=30", "--wait=5"), "kong: the preStop's kong quit waits 5 s"},
		{"kong quitting another prefix", kongFile, replace("--prefix=/kong_prefix", "--prefix=/usr/local/kong"), `kong: the preStop's kong quit --prefix "/usr/local/kong", not KONG_PREFIX "/kong_prefix"`},
		{"kong quitting without the prefix", kongFile, replace(" --prefix=/kong_prefix,", ""), `kong: the preStop's kong quit --prefix "", not KONG_PREFIX "/kong_prefix"`},
		{"kong quitting with a flag Kong does not know", kongFile, replace("--timeout=45", "--timeout=45, --drain=5"), `kong: the preStop's kong quit: "--drain=5"`},
		{"kong cutting the calls under way before it stops waiting for them", kongFile, replace("--timeout=45", "--timeout=40"), "kong: the preStop's kong quit forces the stop 40 s after its SIGQUIT, want more than the longest read_timeout of the services (40s)"},
		{"kong cutting the calls under way at kong quit's default", kongFile, replace(", --timeout=45]", "]"), "kong: the preStop's kong quit forces the stop 10 s after its SIGQUIT"},
		{"kong available as soon as it is ready", kongFile, replace("  minReadySeconds: 30\n", ""), "kong: minReadySeconds 0, want at least 10"},
		{"kong available too soon", kongFile, replace("minReadySeconds: 30", "minReadySeconds: 5"), "kong: minReadySeconds 5, want at least 10"},
		{"kong's grace period below the preStop", kongFile, replace("terminationGracePeriodSeconds: 90", "terminationGracePeriodSeconds: 75"), "kong: terminationGracePeriodSeconds 75, want more than the preStop's 30 s wait and 45 s timeout"},
		{"kong's grace period the default", kongFile, replace("      terminationGracePeriodSeconds: 90\n", ""), "kong: terminationGracePeriodSeconds 30, want more than the preStop's 30 s wait and 45 s timeout"},
		{"kong's replicas not spread", kongFile, replace("topologyKey: kubernetes.io/hostname", "topologyKey: topology.kubernetes.io/zone"), "kong: no topologySpreadConstraint over kubernetes.io/hostname"},
		{"kong's spread refusing a one-node cluster", kongFile, replace("whenUnsatisfiable: ScheduleAnyway", "whenUnsatisfiable: DoNotSchedule"), "kong: the spread over kubernetes.io/hostname is DoNotSchedule, want ScheduleAnyway"},
		{"kong's spread counting other pods", kongFile, replace("          labelSelector:\n            matchLabels:\n              app: kong\n", "          labelSelector:\n            matchLabels:\n              app: gateway\n"), "kong: the spread over kubernetes.io/hostname does not select Kong's pods"},
		{"kong without a disruption budget", kongFile, replace("apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: kong\n  namespace: openfaas\n  labels:\n    app: kong\nspec:\n  minAvailable: 1\n  selector:\n    matchLabels:\n      app: kong\n---\n", ""), "kong: no PodDisruptionBudget of openfaas selects Kong's pods"},
		{"kong's disruption budget selecting other pods", kongFile, replace("spec:\n  minAvailable: 1\n  selector:\n    matchLabels:\n      app: kong\n", "spec:\n  minAvailable: 1\n  selector:\n    matchLabels:\n      app: gateway\n"), "kong: no PodDisruptionBudget of openfaas selects Kong's pods"},
		{"kong's disruption budget keeping none", kongFile, replace("  minAvailable: 1\n", "  minAvailable: 0\n"), "kong: PodDisruptionBudget kong's minAvailable 0, want at least 1 and fewer than the 2 replicas"},
		{"kong's disruption budget blocking every drain", kongFile, replace("  minAvailable: 1\n", "  minAvailable: 2\n"), "kong: PodDisruptionBudget kong's minAvailable 2, want at least 1 and fewer than the 2 replicas"},
		{"kong's disruption budget as a share", kongFile, replace("  minAvailable: 1\n", "  minAvailable: 50%\n"), `kong: PodDisruptionBudget kong's minAvailable "50%", want a number of pods`},
		{"kong's root filesystem writable", kongFile, replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"), "container kong: readOnlyRootFilesystem must be true"},
		{"kong's prefix on the root filesystem", kongFile, replace("            - name: KONG_PREFIX\n              value: /kong_prefix\n", ""), `KONG_PREFIX ("") is not on an emptyDir mounted writable`},
		{"kong's /tmp not mounted", kongFile, replace("            - name: tmp\n              mountPath: /tmp\n", ""), `/tmp ("/tmp") is not on an emptyDir mounted writable`},
		{"kong's /tmp read-only", kongFile, replace("              mountPath: /tmp\n", "              mountPath: /tmp\n              readOnly: true\n"), `/tmp ("/tmp") is not on an emptyDir mounted writable`},
		{"kong's prefix on a ConfigMap", kongFile, replace("        - name: prefix\n          emptyDir:\n            sizeLimit: 256Mi\n", "        - name: prefix\n          configMap:\n            name: kong-config\n"), `KONG_PREFIX ("/kong_prefix") is not on an emptyDir mounted writable`},
		{"kong.yml not from the ConfigMap", kongFile, replace("subPath: kong.yml", "subPath: kong.yaml"), "KONG_DECLARATIVE_CONFIG /kong/kong.yml is not the key kong.yml"},
		{"the gateway cannot reach the functions", fnPolicy, replace("              app: gateway", "              app: gateways"), "refuse gateway → create-order:8080"},
		{"the connector cannot deliver", fnPolicy, replace("              app: rabbitmq-connector", "              app: rabbitmq"), "refuse rabbitmq-connector → reserve-stock:8080"},
		{"functions open to any pod", fnPolicy, replace("        - podSelector:\n            matchExpressions:\n              - {key: faas_function, operator: Exists}\n", "        - namespaceSelector: {}\n"), "let in another-app → create-order:8080"},
		{"prometheus cannot scrape the connectors", policy, replace("        - {protocol: TCP, port: 9464}", "        - {protocol: TCP, port: 9465}"), "refuse prometheus → outbox-relay:9464"},
		{"the connectors scrape job empty", scrapeConfig, replace(`targets: ["outbox-relay:9464", "rabbitmq-connector:9464"]`, "targets: []"), "the connectors scrape job has no target"},
		{"the connectors scrape job gone", scrapeConfig, replace("  - job_name: connectors\n", "  - job_name: connector\n"), "the connectors scrape job has no target"},
		{"a connector left out of the scrape job", scrapeConfig, replace(`, "rabbitmq-connector:9464"`, ""), "rabbitmq-connector serves /metrics on 9464 (METRICS_ADDR), which the connectors scrape job does not read"},
		{"kong's plain HTTP public", policy, replace("    - ports:\n        - {protocol: TCP, port: 8443}\n", "    - ports:\n        - {protocol: TCP, port: 8443}\n        - {protocol: TCP, port: 8000}\n"), "let in internet → kong:8000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, scrape := filepath.Join(root, kubecheck.Dir), filepath.Join(root, scrapeConfig)
			if tc.file == scrapeConfig {
				scrape = editedCopy(t, scrape, tc.edit)
			} else {
				dir = copyFolder(t, tc.file, tc.edit)
			}
			errs := findings(t, dir, scrape)
			var all []string
			for _, err := range errs {
				all = append(all, err.Error())
			}
			if got := strings.Join(all, "\n"); !strings.Contains(got, tc.want) {
				t.Errorf("findings:\n%s\nwant one containing %q", got, tc.want)
			}
		})
	}
}

// kubectl kustomize builds the folder (with a stand-in for the rendered
// kong.yml, which is gitignored) into every object of its manifests and
// Kong's ConfigMap under its hashed name, which Kong's Deployment mounts;
// and docs/deploy-kubernetes.md, which says it was built by hand, counts the
// objects it builds. Skipped without kubectl (a fresh machine's package
// sources have none).
func TestKustomizeBuildsWhatTheGuideCounts(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl")
	}
	dir := filepath.Join(t.TempDir(), "kubernetes")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(root, kubecheck.Dir))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kong", "kong.yml"), []byte("_format_version: \"3.0\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(kubectl, "kustomize", dir).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	built, err := loadBuilt(out)
	if err != nil {
		t.Fatal(err)
	}
	m, err := kubecheck.Load(filepath.Join(root, kubecheck.Dir))
	if err != nil {
		t.Fatal(err)
	}
	want := len(m.Deployments) + len(m.Services) + len(m.NetworkPolicies) + len(m.DisruptionBudgets)
	if len(built.ConfigMaps) != 1 || !strings.HasPrefix(built.ConfigMaps[0], "openfaas/kong-config-") {
		t.Fatalf("kustomize built the ConfigMaps %q, want kong-config with its hash", built.ConfigMaps)
	}
	if built.Objects != want+1 {
		t.Errorf("kustomize built %d objects, want the manifests' %d and the ConfigMap", built.Objects, want)
	}
	if got := built.KongConfig; "openfaas/"+got != built.ConfigMaps[0] {
		t.Errorf("Kong's Deployment mounts the ConfigMap %q, kustomize built %s", got, built.ConfigMaps[0])
	}
	words := []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
		"twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"}
	if built.Objects >= len(words) {
		t.Fatalf("%d objects: past the words this test knows", built.Objects)
	}
	doc := strings.Join(strings.Fields(string(read(t, "docs/deploy-kubernetes.md"))), " ")
	if claim := "builds the " + words[built.Objects] + " objects"; !strings.Contains(doc, claim) {
		t.Errorf("docs/deploy-kubernetes.md does not say kubectl kustomize %q (it builds %d)", claim, built.Objects)
	}
}

// built is what kubectl kustomize printed for the folder: how many objects,
// the ConfigMaps it generated (namespace/name, the hash included) and the
// ConfigMap Kong's Deployment (openfaas/kong) mounts.
type built struct {
	Objects    int
	ConfigMaps []string
	KongConfig string
}

// loadBuilt reads the output of kubectl kustomize, one object a document.
func loadBuilt(b []byte) (built, error) {
	var out built
	for i, doc := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(b), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var obj struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name      string `yaml:"name"`
				Namespace string `yaml:"namespace"`
			} `yaml:"metadata"`
			Spec struct {
				Template struct {
					Spec struct {
						Volumes []struct {
							ConfigMap *struct {
								Name string `yaml:"name"`
							} `yaml:"configMap"`
						} `yaml:"volumes"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			return out, fmt.Errorf("kustomize's document %d: %w", i+1, err)
		}
		out.Objects++
		switch key := obj.Metadata.Namespace + "/" + obj.Metadata.Name; {
		case obj.Kind == "ConfigMap":
			out.ConfigMaps = append(out.ConfigMaps, key)
		case obj.Kind == "Deployment" && key == "openfaas/kong":
			for _, v := range obj.Spec.Template.Spec.Volumes {
				if v.ConfigMap != nil {
					out.KongConfig = v.ConfigMap.Name
				}
			}
		}
	}
	return out, nil
}

// Kong waits longest for the slowest service, and a service that sets no
// read_timeout waits Kong's default, 60 s: kong quit's timeout must cover it.
func TestKongLongestReadCountsKongsDefault(t *testing.T) {
	for _, tc := range []struct {
		name, kong string
		want       time.Duration
	}{
		{"every service set", "services:\n  - {name: a, read_timeout: 40000}\n  - {name: b, read_timeout: 5000}\n", 40 * time.Second},
		{"one service unset", "services:\n  - {name: a, read_timeout: 40000}\n  - {name: b}\n", 60 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kubecheck.KongLongestRead([]byte(tc.kong))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("longest read %s, want %s", got, tc.want)
			}
		})
	}
	if _, err := kubecheck.KongLongestRead([]byte("plugins: []\n")); err == nil {
		t.Error("a file without services has a longest read")
	}
}
