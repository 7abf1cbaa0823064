// Package kubecheck is the CI check of the Kubernetes manifests of
// deploy/kubernetes: no cluster runs here, so every document is decoded
// strictly into the Kubernetes API types (an unknown or misspelt field fails),
// and each Deployment is held against its source of truth — the connectors'
// and Kong's services in docker-compose.yml, the secrets the connectors'
// code reads, the labels the scrape configuration reads — so that the two
// deployments cannot drift apart. Each Check function returns one error per
// finding, so a test can show every problem at once and a variant of a
// manifest can prove each check fails.
package kubecheck

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
	k8syaml "sigs.k8s.io/yaml"

	"github.com/shopfaas/shop/dev/deploycheck"
)

// Dir is the manifests' folder, relative to the module root.
const Dir = "deploy/kubernetes"

// KustomizationFile is the kustomization of Dir (not a Kubernetes object).
const KustomizationFile = "kustomization.yaml"

// Manifests are the objects of every manifest file of Dir, decoded.
type Manifests struct {
	// Files lists the manifest files read, slash-separated and relative to
	// the folder, sorted (the kustomization is not one).
	Files []string
	// Deployments maps namespace/name to the Deployment.
	Deployments map[string]*appsv1.Deployment
	// Services maps namespace/name to the Service.
	Services map[string]*corev1.Service
	// NetworkPolicies lists the NetworkPolicies in file order.
	NetworkPolicies []*networkingv1.NetworkPolicy
	// DisruptionBudgets lists the PodDisruptionBudgets in file order.
	DisruptionBudgets []*policyv1.PodDisruptionBudget
}

// Load reads every *.yaml file under dir but the kustomization, strictly.
func Load(dir string) (*Manifests, error) {
	m := &Manifests{Deployments: map[string]*appsv1.Deployment{}, Services: map[string]*corev1.Service{}}
	var errs []error
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".yaml" {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == KustomizationFile {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		m.Files = append(m.Files, rel)
		if err := m.decode(rel, b); err != nil {
			errs = append(errs, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(m.Files)
	return m, errors.Join(errs...)
}

var documentSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decode adds the objects of one manifest file, named name, to m. Each
// document is decoded as the API server's strict field validation decodes
// it (YAML to JSON refusing duplicate keys, once, then sigs.k8s.io/json's
// case-sensitive strict decoding) into the API type its apiVersion and kind
// name: an unknown, misspelt (a field name differing only in case
// included) or repeated field fails. Each must name its namespace: the
// folder is applied as a whole, never into the current namespace.
func (m *Manifests) decode(name string, b []byte) error {
	var errs []error
	for i, doc := range documentSeparator.Split(string(b), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		where := fmt.Sprintf("%s, document %d", name, i+1)
		j, err := k8syaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := kjson.UnmarshalCaseSensitivePreserveInts(j, &head); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		var obj interface {
			GetNamespace() string
			GetName() string
		}
		switch head.APIVersion + " " + head.Kind {
		case "apps/v1 Deployment":
			obj = &appsv1.Deployment{}
		case "v1 Service":
			obj = &corev1.Service{}
		case "networking.k8s.io/v1 NetworkPolicy":
			obj = &networkingv1.NetworkPolicy{}
		case "policy/v1 PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		default:
			errs = append(errs, fmt.Errorf("%s: %s %s is not a kind this check knows (apps/v1 Deployment, v1 Service, networking.k8s.io/v1 NetworkPolicy, policy/v1 PodDisruptionBudget)", where, head.APIVersion, head.Kind))
			continue
		}
		strict, err := kjson.UnmarshalStrict(j, obj)
		if err == nil {
			err = errors.Join(strict...)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if obj.GetNamespace() == "" || obj.GetName() == "" {
			errs = append(errs, fmt.Errorf("%s: %s without metadata.name and metadata.namespace", where, head.Kind))
			continue
		}
		key := obj.GetNamespace() + "/" + obj.GetName()
		switch o := obj.(type) {
		case *appsv1.Deployment:
			if _, dup := m.Deployments[key]; dup {
				errs = append(errs, fmt.Errorf("%s: Deployment %s twice", where, key))
			}
			m.Deployments[key] = o
		case *corev1.Service:
			if _, dup := m.Services[key]; dup {
				errs = append(errs, fmt.Errorf("%s: Service %s twice", where, key))
			}
			m.Services[key] = o
		case *networkingv1.NetworkPolicy:
			m.NetworkPolicies = append(m.NetworkPolicies, o)
		case *policyv1.PodDisruptionBudget:
			m.DisruptionBudgets = append(m.DisruptionBudgets, o)
		}
	}
	return errors.Join(errs...)
}

// stripComments drops the comment lines of a YAML document, so that a
// document of comments only counts as empty.
func stripComments(doc string) string {
	var out []string
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Kustomization is the part of kustomization.yaml the folder uses; any other
// field fails the decoding (Load's strictness, for kustomize's own schema).
type Kustomization struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Resources  []string `yaml:"resources"`
	// ConfigMapGenerator generates Kong's ConfigMap from the rendered file.
	ConfigMapGenerator []struct {
		Name      string   `yaml:"name"`
		Namespace string   `yaml:"namespace"`
		Files     []string `yaml:"files"`
	} `yaml:"configMapGenerator"`
	// Images are the placeholders of the connectors' images.
	Images []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
	} `yaml:"images"`
}

// LoadKustomization decodes a kustomization, refusing unknown fields.
func LoadKustomization(b []byte) (Kustomization, error) {
	var k Kustomization
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&k); err != nil {
		return Kustomization{}, fmt.Errorf("%s: %w", KustomizationFile, err)
	}
	return k, nil
}

// CheckKustomization reports a manifest file the kustomization leaves out
// (or a resource that is no file), a Deployment's ConfigMap it does not
// generate, an image under images: that no Deployment runs, and an image of
// placeholders (the images the user builds) missing from images:.
func CheckKustomization(k Kustomization, m *Manifests, placeholders ...string) []error {
	var errs []error
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		errs = append(errs, fmt.Errorf("%s: apiVersion %q kind %q, want kustomize.config.k8s.io/v1beta1 Kustomization", KustomizationFile, k.APIVersion, k.Kind))
	}
	res := slices.Sorted(slices.Values(k.Resources))
	if !slices.Equal(res, m.Files) {
		errs = append(errs, fmt.Errorf("%s: resources %v, want every manifest file of the folder %v", KustomizationFile, res, m.Files))
	}
	generated := map[string]bool{}
	for _, g := range k.ConfigMapGenerator {
		generated[g.Namespace+"/"+g.Name] = true
	}
	images := map[string]bool{}
	for _, key := range slices.Sorted(maps.Keys(m.Deployments)) {
		d := m.Deployments[key]
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.ConfigMap != nil && !generated[d.Namespace+"/"+v.ConfigMap.Name] {
				errs = append(errs, fmt.Errorf("deployment %s: ConfigMap %s is not generated by %s", key, v.ConfigMap.Name, KustomizationFile))
			}
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			images[deploycheck.ImageRepository(c.Image)] = true
		}
	}
	listed := map[string]bool{}
	for _, im := range k.Images {
		listed[im.Name] = true
		if !images[im.Name] {
			errs = append(errs, fmt.Errorf("%s: image %s is run by no Deployment", KustomizationFile, im.Name))
		}
	}
	for _, p := range placeholders {
		if repo := deploycheck.ImageRepository(p); !listed[repo] {
			errs = append(errs, fmt.Errorf("%s: the image %s is not under images:, where the user names theirs", KustomizationFile, repo))
		}
	}
	return errs
}

// Container returns the Deployment's container named name.
func Container(d *appsv1.Deployment, name string) (*corev1.Container, error) {
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == name {
			return c, nil
		}
	}
	return nil, fmt.Errorf("deployment %s: no container %s", d.Name, name)
}

// CheckConnectorEnv reports how container c's environment differs from the
// compose service's: the variable names must be the same, but for extra
// (set on Kubernetes only, e.g. FUNCTION_URL_TEMPLATE); a value may differ
// only in a URL's host (a compose service name there, a fully qualified name
// here), its scheme's TLS form (amqps for amqp) and its sslmode (require
// where compose says disable); every host must be fully qualified; and no
// value may come from anywhere but the manifest (secrets are files).
func CheckConnectorEnv(name string, c *corev1.Container, svc deploycheck.Service, extra ...string) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("deployment %s: "+format, append([]any{name}, args...)...))
	}
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			fail("%s comes from valueFrom: a connector reads its secrets from SECRETS_DIR, never from its environment", e.Name)
			continue
		}
		if _, dup := env[e.Name]; dup {
			fail("%s is set twice", e.Name)
		}
		env[e.Name] = e.Value
	}
	if len(c.EnvFrom) > 0 {
		fail("envFrom sets variables no check can see")
	}
	for _, k := range slices.Sorted(maps.Keys(svc.Environment)) {
		v, ok := env[k]
		if !ok {
			fail("docker-compose.yml's service sets %s, the Deployment does not", k)
			continue
		}
		if why := sameSetting(svc.Environment[k], v); why != "" {
			fail("%s is %q, docker-compose.yml's %q: %s", k, v, svc.Environment[k], why)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		if _, ok := svc.Environment[k]; !ok && !slices.Contains(extra, k) {
			fail("sets %s, which docker-compose.yml's service does not (nor is it a documented Kubernetes-only setting)", k)
		}
	}
	for _, ep := range deploycheck.Endpoints(env, "Deployment "+name) {
		if !strings.Contains(ep.Host, ".") {
			fail("%s: host %s is not fully qualified (a short name resolves only in the pod's own namespace, and compose's service names not at all)", ep.From, ep.Host)
		}
	}
	return errs
}

// sameSetting says why a Kubernetes value is not the compose value with
// only its host (and TLS) changed, or "" when it is.
func sameSetting(compose, kube string) string {
	if compose == kube {
		return ""
	}
	cu, err1 := url.Parse(compose)
	ku, err2 := url.Parse(kube)
	if err1 != nil || err2 != nil || cu.Scheme == "" || cu.Host == "" {
		return "only a URL's host may differ"
	}
	norm := func(u *url.URL) string {
		v := *u
		v.Host = v.Port()
		if v.Scheme == "amqps" {
			v.Scheme = "amqp"
		}
		q := v.Query()
		if q.Get("sslmode") == "require" {
			q.Set("sslmode", "disable")
		}
		v.RawQuery = q.Encode()
		return v.String()
	}
	if norm(cu) != norm(ku) {
		return "only the host, amqp→amqps and sslmode=require may differ"
	}
	return ""
}

// SecretFiles returns the files a container finds in the folder dir: the keys
// (paths) of the Secrets of the volume mounted there, with the Secret each
// comes from.
func SecretFiles(d *appsv1.Deployment, c *corev1.Container, dir string) (map[string]string, error) {
	var volume string
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == dir {
			volume = vm.Name
		}
	}
	if volume == "" {
		return nil, fmt.Errorf("deployment %s: nothing is mounted at %s", d.Name, dir)
	}
	files := map[string]string{}
	add := func(secret string, items []corev1.KeyToPath) error {
		if len(items) == 0 {
			return fmt.Errorf("deployment %s: Secret %s is mounted whole: list its keys (items), so that only the connector's own are there", d.Name, secret)
		}
		for _, it := range items {
			if it.Path != it.Key {
				return fmt.Errorf("deployment %s: Secret %s's key %s is mounted as %s: the file must have the secret's name", d.Name, secret, it.Key, it.Path)
			}
			files[it.Path] = secret
		}
		return nil
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name != volume {
			continue
		}
		switch {
		case v.Secret != nil:
			if err := add(v.Secret.SecretName, v.Secret.Items); err != nil {
				return nil, err
			}
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.Secret == nil {
					return nil, fmt.Errorf("deployment %s: volume %s projects something other than a Secret", d.Name, volume)
				}
				if err := add(s.Secret.Name, s.Secret.Items); err != nil {
					return nil, err
				}
			}
		default:
			return nil, fmt.Errorf("deployment %s: volume %s is neither a Secret nor a projection of Secrets", d.Name, volume)
		}
	}
	return files, nil
}

// CheckSecretFiles reports the difference between the secret files a
// connector finds in its SECRETS_DIR and the compose service's (the files
// it binds under that folder), and every file of need (the secrets its code
// reads) that is missing.
func CheckSecretFiles(name string, files map[string]string, svc deploycheck.Service, need ...string) []error {
	var errs []error
	dir := svc.Environment["SECRETS_DIR"]
	compose := map[string]bool{}
	for _, v := range svc.Volumes {
		if path.Dir(v.Target) == dir {
			compose[path.Base(v.Target)] = true
		}
	}
	for _, f := range slices.Sorted(maps.Keys(compose)) {
		if _, ok := files[f]; !ok {
			errs = append(errs, fmt.Errorf("deployment %s: docker-compose.yml mounts the secret %s, the Deployment does not", name, f))
		}
	}
	for _, f := range slices.Sorted(maps.Keys(files)) {
		if !compose[f] {
			errs = append(errs, fmt.Errorf("deployment %s: mounts the secret %s (from %s), which docker-compose.yml's service does not", name, f, files[f]))
		}
	}
	for _, f := range need {
		if _, ok := files[f]; !ok {
			errs = append(errs, fmt.Errorf("deployment %s: the connector reads the secret %s, which is not mounted", name, f))
		}
	}
	return errs
}

// CheckPodLabels reports a Deployment whose pods lack one of labels, or whose
// selector does not select its own pods.
func CheckPodLabels(d *appsv1.Deployment, labels map[string]string) []error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if got := d.Spec.Template.Labels[k]; got != labels[k] {
			errs = append(errs, fmt.Errorf("deployment %s: pod label %s is %q, want %q", d.Name, k, got, labels[k]))
		}
	}
	if d.Spec.Selector == nil || len(d.Spec.Selector.MatchExpressions) > 0 || len(d.Spec.Selector.MatchLabels) == 0 {
		return append(errs, fmt.Errorf("deployment %s: the selector must be matchLabels only", d.Name))
	}
	for k, v := range d.Spec.Selector.MatchLabels {
		if d.Spec.Template.Labels[k] != v {
			errs = append(errs, fmt.Errorf("deployment %s: selector %s=%s does not select its own pods", d.Name, k, v))
		}
	}
	return errs
}

// CheckSingleton reports a Deployment that may run two pods at once: more
// than one replica, or a rolling update (the default), which starts the new
// pod before it stops the old one.
func CheckSingleton(d *appsv1.Deployment) []error {
	var errs []error
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		errs = append(errs, fmt.Errorf("deployment %s: replicas must be exactly 1", d.Name))
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		errs = append(errs, fmt.Errorf("deployment %s: strategy %q, want Recreate (a rolling update runs the old and the new pod together)", d.Name, d.Spec.Strategy.Type))
	}
	return errs
}

// StopTakes is the longest a connector's stop takes, from SIGTERM to its
// exit, with the environment getenv: connector.LongestStop for the RabbitMQ
// connector, InvokeTimeoutAnd for the scheduler.
type StopTakes func(getenv func(string) string) (time.Duration, error)

// InvokeTimeoutAnd is the stop of a connector that waits at most its
// INVOKE_TIMEOUT for the work under way, and margin more (the scheduler).
func InvokeTimeoutAnd(margin time.Duration) StopTakes {
	return func(getenv func(string) string) (time.Duration, error) {
		raw := getenv("INVOKE_TIMEOUT")
		invoke, err := time.ParseDuration(raw)
		if err != nil || invoke <= 0 {
			return 0, fmt.Errorf("INVOKE_TIMEOUT %q is not a positive duration", raw)
		}
		return invoke + margin, nil
	}
}

// CheckStopGrace reports a connector whose pod's grace period does not
// outlast the longest its stop takes, as longest reads it from the
// container's environment: on SIGTERM (a rollout, a node drain) the RabbitMQ
// connector lets the invocations in flight run to their answer, at most
// STOP_TIMEOUT, then closes its connections and flushes its traces
// (connector.LongestStop), and the scheduler waits for its runs; the
// kubelet kills the container at the end of terminationGracePeriodSeconds
// (30 s unless set), which would cut a call under way (the broker
// redelivers it: the handler runs twice). Until 2026-12-08 the RabbitMQ
// connector's was held against INVOKE_TIMEOUT and a margin, whatever its
// STOP_TIMEOUT.
func CheckStopGrace(d *appsv1.Deployment, c *corev1.Container, longest StopTakes) []error {
	need, err := longest(func(k string) string { return Env(c, k) })
	if err != nil {
		return []error{fmt.Errorf("deployment %s: %w", d.Name, err)}
	}
	grace := time.Duration(corev1.DefaultTerminationGracePeriodSeconds) * time.Second
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	if grace <= need {
		return []error{fmt.Errorf("deployment %s: terminationGracePeriodSeconds %.0f, want more than the longest its stop takes, %s: the kubelet would kill the connector while a call it waits for is under way",
			d.Name, grace.Seconds(), need)}
	}
	return nil
}

// CheckPodSecurity reports every container that may run as root (runAsNonRoot
// and a non-zero runAsUser, from the pod or the container), may gain
// privileges, keeps a capability, or has a writable root filesystem; and
// every container without CPU and memory requests.
func CheckPodSecurity(d *appsv1.Deployment) []error {
	var errs []error
	pod := d.Spec.Template.Spec.SecurityContext
	if pod == nil {
		pod = &corev1.PodSecurityContext{}
	}
	if d.Spec.Template.Spec.AutomountServiceAccountToken == nil || *d.Spec.Template.Spec.AutomountServiceAccountToken {
		errs = append(errs, fmt.Errorf("deployment %s: automountServiceAccountToken must be false (no pod of the folder talks to the API server)", d.Name))
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("deployment %s, container %s: "+format, append([]any{d.Name, c.Name}, args...)...))
		}
		sc := c.SecurityContext
		if sc == nil {
			sc = &corev1.SecurityContext{}
		}
		nonRoot, user := pod.RunAsNonRoot, pod.RunAsUser
		if sc.RunAsNonRoot != nil {
			nonRoot = sc.RunAsNonRoot
		}
		if sc.RunAsUser != nil {
			user = sc.RunAsUser
		}
		if nonRoot == nil || !*nonRoot {
			fail("runAsNonRoot must be true")
		}
		if user == nil || *user == 0 {
			fail("runAsUser must name a non-zero uid (the images' own users)")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			fail("allowPrivilegeEscalation must be false")
		}
		if sc.Privileged != nil && *sc.Privileged {
			fail("must not be privileged")
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			fail("capabilities must drop ALL and add none")
		}
		readOnly := sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
		if !readOnly {
			fail("readOnlyRootFilesystem must be true")
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			fail("needs CPU and memory requests")
		}
	}
	return errs
}

// Env returns the value container c sets for the variable name ("" when it
// sets none or takes it from valueFrom); of a variable set twice, the last,
// as the kubelet does.
func Env(c *corev1.Container, name string) string {
	var v string
	for _, e := range c.Env {
		if e.Name == name {
			v = e.Value
		}
	}
	return v
}

// MetricsPort returns the port of container c's METRICS_ADDR: where a
// connector serves /metrics (internal/telemetry ServeMetrics).
func MetricsPort(c *corev1.Container) (string, error) {
	addr := Env(c, "METRICS_ADDR")
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("METRICS_ADDR %q: %w", addr, err)
	}
	return port, nil
}

// PortNumber returns the number of the container port that port (a probe's
// port, a Service's targetPort) names: a name of one of c's ports is that
// port's containerPort, a number itself; a name c does not declare is
// returned as it is, so that a message can show it.
func PortNumber(c *corev1.Container, port intstr.IntOrString) string {
	if port.Type == intstr.String {
		for _, cp := range c.Ports {
			if cp.Name == port.StrVal {
				return fmt.Sprint(cp.ContainerPort)
			}
		}
	}
	return port.String()
}

// CheckMetricsProbe reports a connector whose liveness probe is not an HTTP
// GET of /metrics on METRICS_ADDR's port: the only endpoint the connectors
// serve (internal/telemetry ServeMetrics).
func CheckMetricsProbe(name string, c *corev1.Container) []error {
	port, err := MetricsPort(c)
	if err != nil {
		return []error{fmt.Errorf("deployment %s: %w", name, err)}
	}
	p := c.LivenessProbe
	if p == nil || p.HTTPGet == nil {
		return []error{fmt.Errorf("deployment %s: no HTTP liveness probe", name)}
	}
	if got := PortNumber(c, p.HTTPGet.Port); p.HTTPGet.Path != "/metrics" || got != port {
		return []error{fmt.Errorf("deployment %s: the liveness probe gets %s on port %s; the connector serves /metrics on %s (METRICS_ADDR)", name, p.HTTPGet.Path, got, port)}
	}
	return nil
}

// CheckScrapeJob holds the Deployments of openfaas against the connectors
// scrape job, given as targets, its host:port targets in faasd's
// monitoring/prometheus.yml, which the Kubernetes job (docs/deploy-kubernetes.md,
// "Monitoring") rebuilds from the pod label app and METRICS_ADDR's port. It
// reports a job without targets (a job that scrapes nothing passes every
// other check, and OutboxRelayDown and RabbitMQConnectorDown, absent(up == 1),
// then report the connectors down while they run); a target whose host no Deployment runs, whose pods lack
// the label app=<host>, or whose container's METRICS_ADDR has another port;
// and each Deployment of serving (the connectors that serve /metrics) that
// no target reads.
func CheckScrapeJob(m *Manifests, targets []string, serving ...string) []error {
	if len(targets) == 0 {
		return []error{errors.New("the connectors scrape job has no target: the connectors' metrics would not be scraped")}
	}
	var errs []error
	read := map[string]bool{}
	for _, target := range targets {
		host, port, err := net.SplitHostPort(target)
		if err != nil {
			errs = append(errs, fmt.Errorf("the connectors scrape job's target %q: %w", target, err))
			continue
		}
		read[host] = true
		d := m.Deployments["openfaas/"+host]
		if d == nil {
			errs = append(errs, fmt.Errorf("the connectors scrape job reads %s, which no Deployment runs", target))
			continue
		}
		errs = append(errs, CheckPodLabels(d, map[string]string{"app": host})...)
		c, err := Container(d, host)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if p, err := MetricsPort(c); err != nil || p != port {
			errs = append(errs, fmt.Errorf("deployment %s: METRICS_ADDR %q, the scrape job reads port %s", host, Env(c, "METRICS_ADDR"), port))
		}
	}
	for _, name := range serving {
		if read[name] {
			continue
		}
		port := "METRICS_ADDR's port"
		if d := m.Deployments["openfaas/"+name]; d != nil {
			if c, err := Container(d, name); err == nil {
				if p, err := MetricsPort(c); err == nil {
					port = p
				}
			}
		}
		errs = append(errs, fmt.Errorf("deployment %s serves /metrics on %s (METRICS_ADDR), which the connectors scrape job does not read", name, port))
	}
	return errs
}

// KongPrefixEnv is one of the two variables Kong's Deployment sets that
// compose's kong service does not: Kong's prefix (nginx.conf, the pid,
// sockets, temporary files), on an emptyDir, so that the root filesystem can
// be read-only (Kong's own Helm chart does the same). The image's default,
// /usr/local/kong, cannot be covered by a volume: it holds the .proto files
// the opentelemetry plugin loads.
const KongPrefixEnv = "KONG_PREFIX"

// KongPortMapsEnv is the other variable Kong's Deployment sets that compose's
// kong service does not: Kong's port_maps, each port:targetPort of Kong's
// Service (CheckKongPortMaps). Kong sends X-Forwarded-Port as the port it
// listens on (8443) unless port_maps names the one the client reached
// (443), and the api-docs function writes that port into /openapi.yaml's
// servers entry (internal/apidocs Origin). On faasd, where 8443 is
// published as it is, compose sets none (docs/deploy-faasd.md, step 6).
const KongPortMapsEnv = "KONG_PORT_MAPS"

// kongKubernetesOnly are the variables CheckKongEnv lets Kong's Deployment
// set beyond compose's and kong.yml's.
var kongKubernetesOnly = []string{KongPrefixEnv, KongPortMapsEnv}

// CheckKongEnv reports how Kong's container environment differs from the
// compose service's: every compose variable with its value, plus each of
// vault (the {vault://env/...} variables kong.yml reads) from a Secret by
// secretKeyRef, KongPrefixEnv and KongPortMapsEnv, and nothing else.
func CheckKongEnv(c *corev1.Container, svc deploycheck.Service, vault []string) []error {
	var errs []error
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	for _, k := range slices.Sorted(maps.Keys(svc.Environment)) {
		e, ok := env[k]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("kong: docker-compose.yml's kong service sets %s, the Deployment does not", k))
		case e.ValueFrom != nil || e.Value != svc.Environment[k]:
			errs = append(errs, fmt.Errorf("kong: %s is %q, docker-compose.yml's %q", k, e.Value, svc.Environment[k]))
		}
	}
	for _, k := range vault {
		e, ok := env[k]
		if !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			errs = append(errs, fmt.Errorf("kong: kong.yml reads {vault://env/...} %s: set it from a Secret with valueFrom.secretKeyRef", k))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		if _, ok := svc.Environment[k]; !ok && !slices.Contains(vault, k) && !slices.Contains(kongKubernetesOnly, k) {
			errs = append(errs, fmt.Errorf("kong: sets %s, which neither docker-compose.yml's kong service nor kong.yml reads", k))
		}
	}
	if len(c.EnvFrom) > 0 {
		errs = append(errs, fmt.Errorf("kong: envFrom sets variables no check can see"))
	}
	return errs
}

// CheckKongPortMaps reports a KongPortMapsEnv of Kong's container c that is
// not exactly the port:targetPort pairs of Kong's Service s (a targetPort
// by name is the container port of that name): a port the Service
// publishes that the map leaves out (Kong would send its own port, and
// /openapi.yaml would name a port nothing publishes), a pair the Service
// does not publish, and an entry that is not two port numbers.
func CheckKongPortMaps(c *corev1.Container, s *corev1.Service) []error {
	var errs []error
	raw := Env(c, KongPortMapsEnv)
	mapped := map[string]bool{}
	for entry := range strings.SplitSeq(raw, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		from, to, ok := strings.Cut(entry, ":")
		f, err1 := strconv.Atoi(from)
		t, err2 := strconv.Atoi(to)
		if !ok || err1 != nil || err2 != nil || f < 1 || f > 65535 || t < 1 || t > 65535 {
			errs = append(errs, fmt.Errorf("kong: %s: %q is not port:port", KongPortMapsEnv, entry))
			continue
		}
		mapped[fmt.Sprintf("%d:%d", f, t)] = true
	}
	published := map[string]bool{}
	for _, p := range s.Spec.Ports {
		published[fmt.Sprintf("%d:%s", p.Port, PortNumber(c, p.TargetPort))] = true
	}
	for _, p := range slices.Sorted(maps.Keys(published)) {
		if !mapped[p] {
			errs = append(errs, fmt.Errorf("service %s publishes %s, which %s (%q) does not map: Kong would send X-Forwarded-Port as the port it listens on, and /openapi.yaml would name it", s.Name, p, KongPortMapsEnv, raw))
		}
	}
	for _, p := range slices.Sorted(maps.Keys(mapped)) {
		if !published[p] {
			errs = append(errs, fmt.Errorf("kong: %s maps %s, which service %s does not publish", KongPortMapsEnv, p, s.Name))
		}
	}
	return errs
}

// MountedAt returns the volume mounted at mountPath (and its subPath) in c;
// paths compare cleaned (/kong_prefix/ is /kong_prefix).
func MountedAt(d *appsv1.Deployment, c *corev1.Container, mountPath string) (corev1.Volume, string, bool) {
	v, sub, _, ok := mounted(d, c, mountPath)
	return v, sub, ok
}

// WritableAt is MountedAt for a volume c may write: mounted without
// readOnly.
func WritableAt(d *appsv1.Deployment, c *corev1.Container, mountPath string) (corev1.Volume, bool) {
	v, _, readOnly, ok := mounted(d, c, mountPath)
	return v, ok && !readOnly
}

func mounted(d *appsv1.Deployment, c *corev1.Container, mountPath string) (v corev1.Volume, subPath string, readOnly, ok bool) {
	for _, vm := range c.VolumeMounts {
		if path.Clean(vm.MountPath) != path.Clean(mountPath) {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == vm.Name {
				return v, vm.SubPath, vm.ReadOnly, true
			}
		}
	}
	return corev1.Volume{}, "", false, false
}

// KongQuitMinWait is the least time, in seconds, Kong's preStop keeps Kong
// serving before it quits: a load balancer sends to a node until its health
// check of the Service's healthCheckNodePort has failed a few times, 10 to
// 30 s with the common providers' defaults.
const KongQuitMinWait = 10

// KongMinReady is the least minReadySeconds of Kong's Deployment: a load
// balancer sends to a node that ran no Kong only once its health check of
// the Service's healthCheckNodePort has passed there a few times, the same
// 10 to 30 s as KongQuitMinWait's failing checks.
const KongMinReady = KongQuitMinWait

// KongQuit is Kong's preStop, kong quit, parsed: Kong 3.9's flags --prefix
// (the running Kong's, or the configuration's), --wait (seconds before the
// SIGQUIT, default 0) and --timeout (seconds from the SIGQUIT to a forced
// stop, default 10).
type KongQuit struct {
	Prefix        string
	Wait, Timeout int
}

// ParseKongQuit reads an exec command as kong quit, refusing another
// command and an argument kong quit does not take.
func ParseKongQuit(cmd []string) (KongQuit, error) {
	q := KongQuit{Timeout: 10}
	if len(cmd) < 2 || cmd[0] != "kong" || cmd[1] != "quit" {
		return q, fmt.Errorf("the preStop %q is not kong quit", cmd)
	}
	args := cmd[2:]
	for i := 0; i < len(args); i++ {
		name, value, ok := strings.Cut(args[i], "=")
		if !ok && i+1 < len(args) {
			i++
			value = args[i]
		}
		var err error
		switch name {
		case "-p", "--prefix":
			q.Prefix = value
		case "-w", "--wait":
			q.Wait, err = strconv.Atoi(value)
		case "-t", "--timeout":
			q.Timeout, err = strconv.Atoi(value)
		default:
			return q, fmt.Errorf("the preStop's kong quit: %q is not one of its flags (--prefix, --wait, --timeout)", args[i])
		}
		if err != nil {
			return q, fmt.Errorf("the preStop's kong quit: %s %q is not a number of seconds", name, value)
		}
	}
	return q, nil
}

// KongDefaultReadTimeout is Kong's read_timeout of a service that sets
// none.
const KongDefaultReadTimeout = 60 * time.Second

// KongLongestRead returns the longest read_timeout of the services of the
// Kong declarative file kongYML (KongDefaultReadTimeout for a service that
// sets none): the longest Kong waits for one answer of a function, and so
// the longest a call under way may still need when Kong is told to quit. A
// route that retries (Kong's default, 5, on the GET routes) may wait that
// long once per try; the gateway behind answers 504 well before (35 s), so
// a try that reaches the read timeout is not retried in practice.
func KongLongestRead(kongYML []byte) (time.Duration, error) {
	var decl struct {
		Services []struct {
			Name        string `yaml:"name"`
			ReadTimeout *int   `yaml:"read_timeout"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(kongYML, &decl); err != nil {
		return 0, fmt.Errorf("kong declarative file: %w", err)
	}
	if len(decl.Services) == 0 {
		return 0, errors.New("kong declarative file: no services")
	}
	var longest time.Duration
	for _, s := range decl.Services {
		d := KongDefaultReadTimeout
		if s.ReadTimeout != nil {
			d = time.Duration(*s.ReadTimeout) * time.Millisecond
		}
		longest = max(longest, d)
	}
	return longest, nil
}

// CheckKongMinReady reports a Kong Deployment d whose new pods count as
// available as soon as they are Ready (minReadySeconds below KongMinReady):
// behind a Service of externalTrafficPolicy Local, a new pod on a node that
// ran no Kong gets no connection until the load balancer's health check has
// passed there, and a rollout that went on at once would stop the next old
// pod, the last one the balancer sends to, before.
func CheckKongMinReady(d *appsv1.Deployment) []error {
	if s := d.Spec.MinReadySeconds; s < KongMinReady {
		return []error{fmt.Errorf("kong: minReadySeconds %d, want at least %d: with externalTrafficPolicy Local the balancer sends to a new pod's node only once its health check has passed there, and the rollout would stop the next old pod before", s, KongMinReady)}
	}
	return nil
}

// CheckKongDrain reports what would make Kong's pods, behind a Service of
// externalTrafficPolicy Local, drop connections when one stops (a rollout,
// a drain, an eviction): the load balancer keeps sending to the node until
// its health check fails, so Kong's container c must stop through a preStop
// kong quit of KONG_PREFIX that serves for at least KongQuitMinWait seconds
// and quits gracefully within the pod's grace period, giving the calls under
// way at its SIGQUIT more than longestRead (KongLongestRead of the
// declarative file) before it forces the stop; the pods must spread
// over nodes (kubernetes.io/hostname, ScheduleAnyway so that one node
// still runs them all); and a PodDisruptionBudget of pdbs in d's namespace
// must keep at least one of d's pods, and fewer than its replicas.
func CheckKongDrain(d *appsv1.Deployment, c *corev1.Container, pdbs []*policyv1.PodDisruptionBudget, longestRead time.Duration) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf("kong: "+format, args...)) }
	pod := labels.Set(d.Spec.Template.Labels)
	selects := func(s *metav1.LabelSelector) bool {
		sel, err := metav1.LabelSelectorAsSelector(s)
		return err == nil && s != nil && !sel.Empty() && sel.Matches(pod)
	}

	switch h := c.Lifecycle; {
	case h == nil || h.PreStop == nil:
		fail("no preStop: Kubernetes' SIGTERM stops nginx at once, while the load balancer still sends to the node")
	case h.PreStop.Exec == nil:
		fail("the preStop is not an exec of kong quit")
	default:
		q, err := ParseKongQuit(h.PreStop.Exec.Command)
		if err != nil {
			fail("%v", err)
			break
		}
		if prefix := Env(c, KongPrefixEnv); path.Clean(q.Prefix) != path.Clean(prefix) || q.Prefix == "" {
			fail("the preStop's kong quit --prefix %q, not KONG_PREFIX %q: the running Kong's pid is there (named, not left to the hook's environment)", q.Prefix, prefix)
		}
		if q.Wait < KongQuitMinWait {
			fail("the preStop's kong quit waits %d s, want at least %d: the load balancer sends to the node until its health check has failed", q.Wait, KongQuitMinWait)
		}
		// kong quit's timeout counts from the SIGQUIT, then it stops
		// nginx at once (Kong 3.9 sets no worker_shutdown_timeout): a call
		// Kong took just before then, and waits up to longestRead for, is
		// cut with no answer if the timeout is shorter.
		if time.Duration(q.Timeout)*time.Second <= longestRead {
			fail("the preStop's kong quit forces the stop %d s after its SIGQUIT, want more than the longest read_timeout of the services (%s): a call Kong took just before, a checkout that waits for the function's exec_timeout, would be cut with no answer", q.Timeout, longestRead)
		}
		grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
		if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
			grace = *g
		}
		if grace <= int64(q.Wait+q.Timeout) {
			fail("terminationGracePeriodSeconds %d, want more than the preStop's %d s wait and %d s timeout: the kubelet kills Kong at its end", grace, q.Wait, q.Timeout)
		}
	}

	var spread *corev1.TopologySpreadConstraint
	for i, t := range d.Spec.Template.Spec.TopologySpreadConstraints {
		if t.TopologyKey == corev1.LabelHostname {
			spread = &d.Spec.Template.Spec.TopologySpreadConstraints[i]
		}
	}
	switch {
	case spread == nil:
		fail("no topologySpreadConstraint over %s: both replicas may run on one node, whose loss takes every Kong", corev1.LabelHostname)
	case spread.WhenUnsatisfiable != corev1.ScheduleAnyway:
		fail("the spread over %s is %s, want ScheduleAnyway: a one-node cluster would run one Kong", corev1.LabelHostname, spread.WhenUnsatisfiable)
	case !selects(spread.LabelSelector):
		fail("the spread over %s does not select Kong's pods (%v)", corev1.LabelHostname, pod)
	}

	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	found := false
	for _, b := range pdbs {
		if b.Namespace != d.Namespace || !selects(b.Spec.Selector) {
			continue
		}
		found = true
		switch m := b.Spec.MinAvailable; {
		case m == nil || m.Type != intstr.Int:
			fail("PodDisruptionBudget %s's minAvailable %q, want a number of pods", b.Name, m.String())
		case m.IntVal < 1 || m.IntVal >= replicas:
			fail("PodDisruptionBudget %s's minAvailable %d, want at least 1 and fewer than the %d replicas: 0 lets a drain take every Kong, all of them blocks it", b.Name, m.IntVal, replicas)
		}
	}
	if !found {
		fail("no PodDisruptionBudget of %s selects Kong's pods (%v): a drain may evict both at once", d.Namespace, pod)
	}
	return errs
}
