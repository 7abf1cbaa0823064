// Package deploycheck checks the deployment files that no service here can
// run (faasd's docker-compose.yml, Kong's vault references, Prometheus'
// targets) against what the functions and connectors expect: every host and
// port they are configured with is a declared service, every image is
// pinned, nothing but Kong is published on all interfaces, volumes are bind
// mounts under faasd's directory, and every secret file is in the documented
// layout. Each Check function returns one error per finding, so a test can
// show every problem at once and a fixture can prove each check fails.
package deploycheck

import (
	"bytes"
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
)

// FaasdDir is faasd's working directory: every bind volume lives under it.
const FaasdDir = "/var/lib/faasd"

// SecretsDir holds the secret files the compose services mount.
const SecretsDir = FaasdDir + "/secrets"

// ProjectDir holds the copy of the project's configuration folders (gateway/,
// monitoring/, env/) that the compose services mount.
const ProjectDir = FaasdDir + "/shop"

// Compose is the part of a compose file the checks read.
type Compose struct {
	// Services maps a service name to its definition.
	Services map[string]Service `yaml:"services"`
}

// Service is one compose service.
type Service struct {
	// Image is the image reference, as written (variables unresolved).
	Image string `yaml:"image"`
	// Command is the service's command, as a list.
	Command StringList `yaml:"command"`
	// Entrypoint is the service's entrypoint; nil when the key is absent
	// (faasd ignores the key).
	Entrypoint *StringList `yaml:"entrypoint"`
	// User is the user the service runs as (faasd honours it).
	User string `yaml:"user"`
	// Environment holds the service's variables (list or map form).
	Environment Env `yaml:"environment"`
	// Ports are the published ports in short syntax.
	Ports []string `yaml:"ports"`
	// Expose lists the container ports the service listens on.
	Expose []string `yaml:"expose"`
	// Volumes are the service's mounts.
	Volumes []Volume `yaml:"volumes"`
	// DependsOn lists the services started first.
	DependsOn []string `yaml:"depends_on"`
	// Restart is the restart policy, which faasd ignores.
	Restart string `yaml:"restart"`
}

// StringList is a compose list that may also be written as one string.
type StringList []string

// UnmarshalYAML accepts a sequence of strings or a single string.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = StringList{n.Value}
		return nil
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*l = s
	return nil
}

// Env is a compose environment, written as a map or as KEY=value items.
type Env map[string]string

// UnmarshalYAML accepts both compose forms.
func (e *Env) UnmarshalYAML(n *yaml.Node) error {
	out := Env{}
	if n.Kind == yaml.SequenceNode {
		var items []string
		if err := n.Decode(&items); err != nil {
			return err
		}
		for _, it := range items {
			k, v, _ := strings.Cut(it, "=")
			out[k] = v
		}
		*e = out
		return nil
	}
	var m map[string]*string
	if err := n.Decode(&m); err != nil {
		return err
	}
	for k, v := range m {
		if v != nil {
			out[k] = *v
		} else {
			out[k] = ""
		}
	}
	*e = out
	return nil
}

// Volume is a mount in long syntax (type, source, target) or short syntax.
type Volume struct {
	// Type is bind or volume (short syntax: bind when Source is a path).
	Type string `yaml:"type"`
	// Source is the host path (bind) or the volume name.
	Source string `yaml:"source"`
	// Target is the path inside the container.
	Target string `yaml:"target"`
}

// UnmarshalYAML accepts the long syntax and `source:target[:mode]`.
func (v *Volume) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		parts := strings.Split(n.Value, ":")
		v.Source, v.Type = parts[0], "volume"
		if len(parts) > 1 {
			v.Target = parts[1]
		}
		if strings.HasPrefix(v.Source, "/") || strings.HasPrefix(v.Source, ".") || strings.HasPrefix(v.Source, "~") {
			v.Type = "bind"
		}
		return nil
	}
	type plain Volume
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*v = Volume(p)
	return nil
}

// LoadCompose parses a compose file.
func LoadCompose(b []byte) (Compose, error) {
	var c Compose
	if err := yaml.Unmarshal(b, &c); err != nil {
		return Compose{}, fmt.Errorf("compose file: %w", err)
	}
	if len(c.Services) == 0 {
		return Compose{}, fmt.Errorf("compose file: no services")
	}
	return c, nil
}

var defaultVar = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}`)

// Resolve substitutes ${VAR:-default} and ${VAR-default} with their default
// and ${VAR} with nothing: what faasd does with every variable but
// ARCH_SUFFIX, which also resolves to nothing on amd64.
func Resolve(s string) string {
	return defaultVar.ReplaceAllStringFunc(s, func(m string) string {
		return defaultVar.FindStringSubmatch(m)[1]
	})
}

// CheckImagesPinned reports every image without an explicit tag or digest,
// with the tag latest, or whose reference is incomplete once variables are
// resolved as faasd resolves them.
func CheckImagesPinned(c Compose) []error {
	var errs []error
	for _, name := range sortedNames(c) {
		img := Resolve(c.Services[name].Image)
		if img == "" {
			errs = append(errs, fmt.Errorf("service %s: no image", name))
			continue
		}
		if strings.HasPrefix(img, "/") || strings.Contains(img, "//") {
			errs = append(errs, fmt.Errorf("service %s: image %q is incomplete once variables are resolved", name, img))
			continue
		}
		if _, digest, ok := strings.Cut(img, "@"); ok {
			if !strings.HasPrefix(digest, "sha256:") {
				errs = append(errs, fmt.Errorf("service %s: image %q: bad digest", name, img))
			}
			continue
		}
		last := path.Base(img)
		_, tag, ok := strings.Cut(last, ":")
		switch {
		case !ok || tag == "":
			errs = append(errs, fmt.Errorf("service %s: image %q has no tag (pin a version)", name, img))
		case tag == "latest" || tag == "stable" || tag == "edge":
			errs = append(errs, fmt.Errorf("service %s: image %q uses the moving tag %q (pin a version)", name, img, tag))
		}
	}
	return errs
}

// CheckPublishedPorts reports every port published on all interfaces by a
// service not in public (short syntax without a host address, or with
// 0.0.0.0 or ::), and any port in a syntax the check cannot read.
func CheckPublishedPorts(c Compose, public ...string) []error {
	var errs []error
	for _, name := range sortedNames(c) {
		for _, p := range c.Services[name].Ports {
			p = Resolve(p)
			host, ok := publishedHost(p)
			if !ok {
				errs = append(errs, fmt.Errorf("service %s: port %q: use HOST_IP:HOST_PORT:CONTAINER_PORT", name, p))
				continue
			}
			if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
				continue
			}
			if !slices.Contains(public, name) {
				errs = append(errs, fmt.Errorf("service %s: port %q is published on all interfaces; bind it to 127.0.0.1 (only %s may be public)", name, p, strings.Join(public, ", ")))
			}
		}
	}
	return errs
}

// publishedHost returns the host address of a short-syntax port: empty when
// it listens on every interface.
func publishedHost(p string) (string, bool) {
	p, _, _ = strings.Cut(p, "/")  // protocol
	if strings.HasPrefix(p, "[") { // [::1]:8080:8080
		end := strings.Index(p, "]")
		if end < 0 {
			return "", false
		}
		return p[1:end], strings.Count(p[end+1:], ":") == 2
	}
	parts := strings.Split(p, ":")
	switch len(parts) {
	case 1, 2:
		return "", parts[0] != ""
	case 3:
		if parts[0] == "0.0.0.0" {
			return "", true
		}
		return parts[0], net.ParseIP(parts[0]) != nil
	}
	return "", false
}

// Endpoint is a host and port a function or connector is configured to
// reach, and where that configuration comes from.
type Endpoint struct {
	// Host is the service name.
	Host string
	// Port is the TCP port.
	Port string
	// From names the setting, e.g. "env/production.yml REDIS_ADDR".
	From string
}

// Endpoints extracts the endpoints of an environment: URL values
// (postgres://, amqp://, http://, ...) and host:port values of variables whose
// name ends in _ADDR. Loopback and wildcard hosts (local listeners such as
// METRICS_ADDR) are not endpoints. Default ports are filled in for the
// schemes the shop uses.
func Endpoints(env map[string]string, from string) []Endpoint {
	var out []Endpoint
	for _, k := range slices.Sorted(maps.Keys(env)) {
		v := Resolve(env[k])
		var host, port string
		if u, err := url.Parse(v); err == nil && u.Scheme != "" && u.Host != "" {
			host, port = u.Hostname(), u.Port()
			if port == "" {
				port = map[string]string{"http": "80", "https": "443", "postgres": "5432", "postgresql": "5432", "amqp": "5672", "redis": "6379"}[u.Scheme]
			}
		} else if strings.HasSuffix(k, "_ADDR") {
			h, p, err := net.SplitHostPort(v)
			if err != nil {
				continue
			}
			host, port = h, p
		} else {
			continue
		}
		if host == "" || host == "localhost" || host == "0.0.0.0" || host == "::" {
			continue
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			continue
		}
		out = append(out, Endpoint{Host: host, Port: port, From: from + " " + k})
	}
	return out
}

// CheckEndpoints reports every endpoint whose host is not a service of c, or
// whose port the service does not declare (in expose or as a published
// port's container port). faasd names the OpenFaaS provider faasd-provider
// itself, so that host is always declared.
func CheckEndpoints(c Compose, endpoints []Endpoint) []error {
	var errs []error
	for _, e := range endpoints {
		if e.Host == "faasd-provider" {
			continue
		}
		s, ok := c.Services[e.Host]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: host %s is not a service of the compose file", e.From, e.Host))
			continue
		}
		if !slices.Contains(declaredPorts(s), e.Port) {
			errs = append(errs, fmt.Errorf("%s: service %s does not declare port %s (expose: %v)", e.From, e.Host, e.Port, s.Expose))
		}
	}
	return errs
}

func declaredPorts(s Service) []string {
	out := slices.Clone(s.Expose)
	for _, p := range s.Ports {
		p, _, _ = strings.Cut(Resolve(p), "/")
		parts := strings.Split(p, ":")
		out = append(out, parts[len(parts)-1])
	}
	return out
}

// CheckVolumes reports every volume that is not a bind mount of an absolute
// path under FaasdDir (faasd supports bind volumes only, and its directory is
// what an operator backs up), and every restart policy (faasd ignores them:
// the services must retry on their own).
func CheckVolumes(c Compose) []error {
	var errs []error
	for _, name := range sortedNames(c) {
		s := c.Services[name]
		if s.Restart != "" {
			errs = append(errs, fmt.Errorf("service %s: restart: %s is ignored by faasd; remove it", name, s.Restart))
		}
		for _, v := range s.Volumes {
			switch {
			case v.Type != "bind":
				errs = append(errs, fmt.Errorf("service %s: volume %q is not a bind mount (faasd supports bind volumes only)", name, v.Source))
			case !strings.HasPrefix(path.Clean(v.Source)+"/", FaasdDir+"/") || path.Clean(v.Source) == FaasdDir:
				errs = append(errs, fmt.Errorf("service %s: bind source %q is not under %s", name, v.Source, FaasdDir))
			}
		}
	}
	return errs
}

// CheckSecretFiles reports every bind source under SecretsDir whose file
// name is not in the documented layout.
func CheckSecretFiles(c Compose, layout []string) []error {
	var errs []error
	for _, name := range sortedNames(c) {
		for _, v := range c.Services[name].Volumes {
			rel, ok := strings.CutPrefix(path.Clean(v.Source), SecretsDir+"/")
			if !ok {
				continue
			}
			if !slices.Contains(layout, rel) {
				errs = append(errs, fmt.Errorf("service %s: secret file %s is not in the documented secrets layout %v", name, v.Source, layout))
			}
		}
	}
	return errs
}

// CheckProjectFiles reports every bind source under ProjectDir that has no
// counterpart in the project at root (the guide copies gateway/, monitoring/
// and env/ there).
func CheckProjectFiles(c Compose, root string) []error {
	var errs []error
	for _, name := range sortedNames(c) {
		for _, v := range c.Services[name].Volumes {
			rel, ok := strings.CutPrefix(path.Clean(v.Source), ProjectDir+"/")
			if !ok {
				continue
			}
			if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel))); err != nil {
				errs = append(errs, fmt.Errorf("service %s: %s is the copy of %s, which the project lacks", name, v.Source, rel))
			}
		}
	}
	return errs
}

// CheckDependsOn reports every depends_on entry that is not a service.
func CheckDependsOn(c Compose) []error {
	var errs []error
	for _, name := range sortedNames(c) {
		for _, d := range c.Services[name].DependsOn {
			if _, ok := c.Services[d]; !ok {
				errs = append(errs, fmt.Errorf("service %s: depends_on %s, which is not a service", name, d))
			}
		}
	}
	return errs
}

// Image is what the checks know of an image the compose file runs.
type Image struct {
	// Entrypoint is the image's ENTRYPOINT, as its Dockerfile sets it
	// (empty: none). faasd runs a service's `command:` as the whole argv
	// (pkg/supervisor.go: oci.WithImageConfig, then oci.WithProcessArgs),
	// so a command must name it itself when it needs it.
	Entrypoint []string
	// Scripts are the bare names (found on the image's PATH) that may
	// start a command: the image's entrypoint script. Anything else must be
	// an absolute path.
	Scripts []string
	// SwitchesUser is true when the image starts as root and its
	// entrypoint chowns its data and switches to its own user (gosu,
	// su-exec): that needs CAP_CHOWN, CAP_SETUID and CAP_SETGID, and faasd
	// gives a compose service no capability but those of its cap_add
	// (oci.WithCapabilities(svc.Caps)), so the service must run as that
	// user (`user:`), which skips the switch.
	SwitchesUser bool
}

// Images lists every image of docker-compose.yml by repository (the
// reference without its tag, variables resolved), with its ENTRYPOINT as
// each image's Dockerfile sets it. A new image must be added here, after
// reading its Dockerfile: CheckCommands and CheckUsers refuse one they do
// not know.
var Images = map[string]Image{
	// faasd's core services.
	"docker.io/library/nats-streaming": {Entrypoint: []string{"/nats-streaming-server"}},
	"docker.io/prom/prometheus":        {Entrypoint: []string{"/bin/prometheus"}},
	"ghcr.io/openfaas/gateway":         {},
	"ghcr.io/openfaas/queue-worker":    {},
	// docker-library images: ENTRYPOINT ["docker-entrypoint.sh"] (in
	// /usr/local/bin); started as root, they chown their data and switch
	// to their user, uid 999 in all three.
	"docker.io/library/postgres": {Entrypoint: []string{"docker-entrypoint.sh"}, Scripts: []string{"docker-entrypoint.sh"}, SwitchesUser: true},
	"docker.io/library/rabbitmq": {Entrypoint: []string{"docker-entrypoint.sh"}, Scripts: []string{"docker-entrypoint.sh"}, SwitchesUser: true},
	"docker.io/library/redis":    {Entrypoint: []string{"docker-entrypoint.sh"}, Scripts: []string{"docker-entrypoint.sh"}, SwitchesUser: true},
	// ENTRYPOINT ["tini", "--"], CMD ["/bin/meilisearch"]; runs as root
	// and switches to no one.
	"docker.io/getmeili/meilisearch": {Entrypoint: []string{"tini", "--"}, Scripts: []string{"tini"}},
	// ENTRYPOINT ["/docker-entrypoint.sh"], CMD ["kong", "docker-start"],
	// USER kong (not uid 1000: the image is FROM ubuntu:noble, whose ubuntu
	// user holds it); docker-compose.yml runs it as `user: "1000:0"`.
	"docker.io/library/kong": {Entrypoint: []string{"/docker-entrypoint.sh"}},
	// ENTRYPOINT ["/cmd/jaeger/jaeger-linux"], USER 10001.
	"docker.io/jaegertracing/jaeger": {Entrypoint: []string{"/cmd/jaeger/jaeger-linux"}},
	// ENTRYPOINT ["/run.sh"], USER grafana (uid 472).
	"docker.io/grafana/grafana": {Entrypoint: []string{"/run.sh"}},
	// ENTRYPOINT ["/bin/postgres_exporter"], USER nobody.
	"quay.io/prometheuscommunity/postgres-exporter": {Entrypoint: []string{"/bin/postgres_exporter"}},
	// ENTRYPOINT ["/bin/node_exporter"], USER nobody.
	"quay.io/prometheus/node-exporter": {Entrypoint: []string{"/bin/node_exporter"}},
	// FROM scratch, ENTRYPOINT ["/redis_exporter"], USER 59000:59000.
	"docker.io/oliver006/redis_exporter": {Entrypoint: []string{"/redis_exporter"}},
	// The connectors (connectors/<name>/Dockerfile): CMD only, USER app.
	"ghcr.io/shopfaas/outbox-relay":       {},
	"ghcr.io/shopfaas/rabbitmq-connector": {},
	"ghcr.io/shopfaas/scheduler":          {},
}

// ImageRepository is an image reference without its tag or digest (a
// compose file's, with its variables resolved as faasd resolves them, or a
// Kubernetes manifest's): what a kustomization's images: and the images
// table match on.
func ImageRepository(image string) string {
	img := Resolve(image)
	img, _, _ = strings.Cut(img, "@")
	if i := strings.LastIndex(img, ":"); i > strings.LastIndex(img, "/") {
		img = img[:i]
	}
	return img
}

// CheckCommands reports every service whose `command:` would not start on
// faasd as it starts on docker-compose. faasd replaces the image's whole
// argv, ENTRYPOINT included, with the command (docs/deploy-faasd.md, step
// 4), so its first word must be an absolute path or one of the image's
// entrypoint scripts (images), never a flag (--config.file=…, which the
// image's ENTRYPOINT would have received) nor a bare binary the ENTRYPOINT
// would have wrapped (postgres, redis-server, sh). And every service with a
// command sets `entrypoint: []`, so docker-compose too runs exactly that
// argv instead of handing it to the ENTRYPOINT.
func CheckCommands(c Compose, images map[string]Image) []error {
	var errs []error
	for _, name := range sortedNames(c) {
		s := c.Services[name]
		if len(s.Command) == 0 {
			continue
		}
		repo := ImageRepository(s.Image)
		img, known := images[repo]
		if !known {
			errs = append(errs, fmt.Errorf("service %s: image %s is not in deploycheck.Images: add its ENTRYPOINT from its Dockerfile", name, repo))
		}
		first := s.Command[0]
		switch {
		case strings.HasPrefix(first, "-"):
			errs = append(errs, fmt.Errorf("service %s: command starts with the flag %q: faasd runs the command without the image's ENTRYPOINT %q; start it with the binary's absolute path", name, first, img.Entrypoint))
		case strings.HasPrefix(first, "/"), slices.Contains(img.Scripts, first):
		default:
			errs = append(errs, fmt.Errorf("service %s: command starts with %q, neither an absolute path nor an entrypoint script of %s %q: faasd runs it without the image's ENTRYPOINT", name, first, repo, img.Scripts))
		}
		if s.Entrypoint == nil || len(*s.Entrypoint) > 0 {
			errs = append(errs, fmt.Errorf("service %s: a service with a command sets `entrypoint: []`, so docker-compose runs the same argv as faasd", name))
		}
	}
	return errs
}

// CheckUsers reports every service whose image switches user as root
// (Image.SwitchesUser) and that does not set `user:`, and every image the
// table does not know.
func CheckUsers(c Compose, images map[string]Image) []error {
	var errs []error
	for _, name := range sortedNames(c) {
		s := c.Services[name]
		repo := ImageRepository(s.Image)
		img, known := images[repo]
		switch {
		case !known:
			errs = append(errs, fmt.Errorf("service %s: image %s is not in deploycheck.Images: read its Dockerfile and add it", name, repo))
		case img.SwitchesUser && s.User == "":
			errs = append(errs, fmt.Errorf("service %s: %s starts as root and switches user, which needs capabilities faasd does not give; set `user:` to its uid", name, repo))
		}
	}
	return errs
}

// shells are the shells a compose command may run a script with.
var shells = []string{"sh", "bash", "ash", "dash"}

// readInArgument is a command substitution inside an export or a command's
// arguments, where the shell ignores its failure.
var readInArgument = regexp.MustCompile(`(?:export|exec)\s[^;]*\$\(`)

// CheckSecretReads reports every `/bin/sh -c` command that reads a file
// with $(...) inside an export or another command's arguments: the shell
// ignores a substitution's failure there (set -e too), so an unreadable
// secret becomes an empty password. A command reads each file into a
// variable first, under set -e, and refuses an empty one with a line that
// names the secret (missing, unreadable or empty all end there):
// `set -e; p=$(cat FILE) || p=; [ -n "$p" ] || { echo "S not started, the
// secret F is missing, unreadable or empty; …" >&2; exit 1; }; export X="$p"; exec ...`.
//
// So it also reports, in every `sh -c` command whatever reads its secret
// ($(cat …), read < …), each test of a variable's emptiness that stops the
// service without a line saying why (silentRefusals; under set -e a bare
// `[ -n "$p" ];` stops it with exit 1 and not a word in its log). A test is
// `[ … ]` or `test …` of $x, "$x", ${x} or ${x:-}, with -n, ! -z or no
// operator (true when set) or with -z or ! -n (true when empty), spaces as
// sh reads them. One true when set refuses the variable when it is the last
// command of its list (`[ -n "$p" ];`) or is followed, past any `&& …`, by
// `|| R`; one true when empty refuses it when followed by `&& R` and R
// exits. Each refusal R must be a group `{ …; exit N; }` (N at least 1, its
// commands split by ; or line breaks) with an echo or a printf that writes a
// quoted line holding "not started" to stderr (`>&2` anywhere in that
// command). Not refusals, so not reported: the condition of an if, an elif,
// a while or an until (however many tests its list links with &&, || or
// !), a test followed by && and no || (set -e ignores a failure before the
// last && of a list: `[ -n "$x" ] && export X="$x"` goes on), a test
// negated with ! (set -e ignores it too), and a test inside $(...).
//
// A command run by a shell (sh, bash, ash, dash) is read only in the form
// [<shell>, -c, SCRIPT]; any other (one string, flags together as -ec, a
// script file) is reported, as its reads could not be checked.
func CheckSecretReads(c Compose) []error {
	var errs []error
	for _, name := range sortedNames(c) {
		cmd := c.Services[name].Command
		var shell string
		if len(cmd) > 0 {
			shell, _, _ = strings.Cut(strings.TrimSpace(cmd[0]), " ")
		}
		if !slices.Contains(shells, path.Base(shell)) {
			continue
		}
		if len(cmd) < 3 || cmd[1] != "-c" {
			errs = append(errs, fmt.Errorf("service %s: write the command as a list [%s, -c, SCRIPT]: a script in one string, after -ec or in a file is not read, so its secret reads are not checked", name, shell))
			continue
		}
		script := strings.ReplaceAll(cmd[2], "$$", "$") // compose's escape
		// Every script, whatever reads its secret ($(cat …), read < …).
		errs = append(errs, silentRefusals(name, script)...)
		if !strings.Contains(script, "$(") {
			continue
		}
		if m := readInArgument.FindString(script); m != "" {
			errs = append(errs, fmt.Errorf("service %s: %q…: a failed $(...) there is ignored; read it into a variable under set -e first", name, m))
		}
		if !strings.HasPrefix(script, "set -e;") {
			errs = append(errs, fmt.Errorf("service %s: a script that reads a file starts with `set -e;`", name))
		}
	}
	return errs
}

var vaultEnv = regexp.MustCompile(`\{vault://env/([A-Za-z0-9_-]+)`)

// KongVaultEnv returns the environment variables that the {vault://env/...}
// references of a Kong declarative file read (Kong's env vault upper-cases
// the name and turns dashes into underscores), sorted and without repeats.
func KongVaultEnv(kongYML []byte) []string {
	var out []string
	for _, m := range vaultEnv.FindAllSubmatch(kongYML, -1) {
		name := strings.ToUpper(strings.ReplaceAll(string(m[1]), "-", "_"))
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// CheckKongVault reports every variable of vars that the kong service does
// not set, either in its environment or with `export NAME=` in its command
// (how the compose file turns a secret file into a variable).
func CheckKongVault(c Compose, service string, vars []string) []error {
	s, ok := c.Services[service]
	if !ok {
		return []error{fmt.Errorf("no %s service", service)}
	}
	cmd := strings.Join(s.Command, " ")
	var errs []error
	for _, v := range vars {
		if _, ok := s.Environment[v]; ok {
			continue
		}
		if regexp.MustCompile(`export\s+(?:[A-Z0-9_]+=\S+\s+)*` + regexp.QuoteMeta(v) + `=`).MatchString(cmd) {
			continue
		}
		errs = append(errs, fmt.Errorf("service %s: kong.yml reads {vault://env/...} %s, which the service does not set", service, v))
	}
	return errs
}

// PrometheusConfig is the part of prometheus.yml the checks read.
type PrometheusConfig struct {
	// ScrapeConfigs are the scrape jobs.
	ScrapeConfigs []struct {
		// JobName names the job.
		JobName string `yaml:"job_name"`
		// StaticConfigs hold the targets.
		StaticConfigs []struct {
			// Targets are host:port (or, for relabelled jobs, names).
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// JobTargets parses prometheus.yml and returns each job's static targets.
func JobTargets(b []byte) (map[string][]string, error) {
	var p PrometheusConfig
	if err := yaml.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("prometheus config: %w", err)
	}
	out := map[string][]string{}
	for _, sc := range p.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			out[sc.JobName] = append(out[sc.JobName], st.Targets...)
		}
	}
	return out, nil
}

// SecretsLayout reads the documented secrets layout: the table rows
// "| `name` | ..." between the markers <!-- secrets-layout:begin --> and
// <!-- secrets-layout:end --> of the deploy guide.
func SecretsLayout(doc []byte) ([]string, error) {
	_, rest, ok := bytes.Cut(doc, []byte("<!-- secrets-layout:begin -->"))
	if !ok {
		return nil, fmt.Errorf("no <!-- secrets-layout:begin --> marker")
	}
	block, _, ok := bytes.Cut(rest, []byte("<!-- secrets-layout:end -->"))
	if !ok {
		return nil, fmt.Errorf("no <!-- secrets-layout:end --> marker")
	}
	row := regexp.MustCompile("(?m)^\\|\\s*`([^`]+)`\\s*\\|")
	var out []string
	for _, m := range row.FindAllSubmatch(block, -1) {
		out = append(out, string(m[1]))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the secrets layout table is empty")
	}
	return out, nil
}

func sortedNames(c Compose) []string {
	return slices.Sorted(maps.Keys(c.Services))
}

// FunctionTimeouts are one function's timeouts, as its environment sets them
// (the watchdog's variables: bare seconds or Go durations).
type FunctionTimeouts struct {
	// Exec is exec_timeout: the handler's deadline.
	Exec time.Duration
	// Write is write_timeout: the end of the answer, counted from about the
	// same moment as Exec.
	Write time.Duration
}

// WatchdogDuration parses a timeout the way the watchdogs and fnserve do: a
// bare number is seconds, anything else a Go duration.
func WatchdogDuration(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration such as 10s", s)
	}
	return d, nil
}

// CheckTimeouts checks that every timeout of a synchronous call outlasts the
// one inside it, so that an answer written when an inner deadline passes (a
// handler's 504, the gateway's) reaches the caller instead of a cut
// connection: each function's write_timeout exceeds its exec_timeout; the
// gateway's upstream_timeout is at least every function's write_timeout and
// its own write_timeout exceeds upstream_timeout; every Kong service's
// read_timeout (kongRead, by service) exceeds upstream_timeout; and every
// compose service with an INVOKE_TIMEOUT (the connectors, which call through
// the gateway) waits at least as long as upstream_timeout.
func CheckTimeouts(c Compose, fns map[string]FunctionTimeouts, kongRead map[string]time.Duration) []error {
	var errs []error
	gateway := func(name string) time.Duration {
		d, err := WatchdogDuration(c.Services["gateway"].Environment[name])
		if err != nil {
			errs = append(errs, fmt.Errorf("gateway %s: %w", name, err))
		}
		return d
	}
	upstream, write := gateway("upstream_timeout"), gateway("write_timeout")
	if write <= upstream {
		errs = append(errs, fmt.Errorf("gateway: write_timeout %s must exceed upstream_timeout %s, or its own 504 is cut off", write, upstream))
	}
	for _, name := range slices.Sorted(maps.Keys(fns)) {
		t := fns[name]
		if t.Write <= t.Exec {
			errs = append(errs, fmt.Errorf("function %s: write_timeout %s must exceed exec_timeout %s, or an answer at the exec deadline is cut off", name, t.Write, t.Exec))
		}
		if upstream < t.Write {
			errs = append(errs, fmt.Errorf("function %s: write_timeout %s exceeds the gateway's upstream_timeout %s", name, t.Write, upstream))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(kongRead)) {
		if kongRead[name] <= upstream {
			errs = append(errs, fmt.Errorf("kong service %s: read_timeout %s must exceed the gateway's upstream_timeout %s", name, kongRead[name], upstream))
		}
	}
	for _, name := range sortedNames(c) {
		raw, ok := c.Services[name].Environment["INVOKE_TIMEOUT"]
		if !ok {
			continue
		}
		d, err := WatchdogDuration(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s INVOKE_TIMEOUT: %w", name, err))
		} else if d < upstream {
			errs = append(errs, fmt.Errorf("%s: INVOKE_TIMEOUT %s is shorter than the gateway's upstream_timeout %s", name, d, upstream))
		}
	}
	return errs
}

// FaasdKillAfter is how long faasd waits after a service's SIGTERM before it
// kills it (its killTask), whatever the compose file says.
const FaasdKillAfter = 30 * time.Second

// CheckStopTimeout reports a connector service whose stop (STOP_TIMEOUT, by
// default INVOKE_TIMEOUT and margin, connector.StopMargin) does not end
// before faasd kills it: the calls still under way would be cut and their
// events delivered again.
func CheckStopTimeout(c Compose, service string, margin time.Duration) []error {
	env := c.Services[service].Environment
	if raw, ok := env["STOP_TIMEOUT"]; ok {
		d, err := WatchdogDuration(raw)
		if err != nil {
			return []error{fmt.Errorf("%s STOP_TIMEOUT: %w", service, err)}
		}
		if d >= FaasdKillAfter {
			return []error{fmt.Errorf("%s: stops after %s (STOP_TIMEOUT), want less than faasd's %s, after which it kills the connector mid-call", service, d, FaasdKillAfter)}
		}
		return nil
	}
	invoke := 35 * time.Second // the connector's default
	if raw, ok := env["INVOKE_TIMEOUT"]; ok {
		d, err := WatchdogDuration(raw)
		if err != nil {
			return []error{fmt.Errorf("%s INVOKE_TIMEOUT: %w", service, err)}
		}
		invoke = d
	}
	if invoke+margin >= FaasdKillAfter {
		return []error{fmt.Errorf("%s: stops after %s (INVOKE_TIMEOUT %s and the %s margin), want less than faasd's %s: set STOP_TIMEOUT below it",
			service, invoke+margin, invoke, margin, FaasdKillAfter)}
	}
	return nil
}
