package deploycheck

import (
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// composeStart runs service's `/bin/sh -c` command from docker-compose.yml
// with sh, as its container runs it: /run/secrets/ replaced by a folder
// holding files (a nil content is a directory, which not even root reads
// as a file: an unreadable secret), and program, the binary the command
// execs, replaced by a shim that writes the variable variable to a file and
// exits. started says whether the shim ran, recorded is what it wrote, out
// the command's output.
func composeStart(t *testing.T, service, program, variable string, files map[string][]byte) (started bool, recorded, out string) {
	t.Helper()
	script := realCompose(t).Services[service].Command
	if len(script) != 3 || script[0] != "/bin/sh" || script[1] != "-c" {
		t.Fatalf("%s's command %q, want /bin/sh -c SCRIPT", service, script)
	}
	execs := regexp.MustCompile(`\bexec ` + regexp.QuoteMeta(program) + `(\s|$)`)
	if !execs.MatchString(script[2]) {
		t.Fatalf("%s's command does not exec %s: %s", service, program, script[2])
	}
	dir := t.TempDir()
	got := filepath.Join(dir, "got")
	shim := filepath.Join(dir, "shim")
	if err := os.WriteFile(shim, []byte("#!/bin/sh\nprintf '%s' \"$"+variable+"\" > "+got+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	text := execs.ReplaceAllStringFunc(script[2], func(m string) string {
		return "exec " + shim + m[len("exec "+program):] // the blank or line end after it
	})
	text = strings.NewReplacer("$$", "$", "/run/secrets/", secretFiles(t, files)+"/").Replace(text)
	cmd := exec.Command("/bin/sh", "-c", text)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	b, err := cmd.CombinedOutput()
	if err != nil && !errors.As(err, new(*exec.ExitError)) {
		t.Fatalf("%s's command: %v", service, err)
	}
	rec, readErr := os.ReadFile(got)
	if started = readErr == nil; started && err != nil {
		t.Errorf("%s's command started %s and then failed: %v (%s)", service, program, err, b)
	}
	return started, string(rec), string(b)
}

// unusable are the ways a secret file is of no use to its service.
var unusable = []string{"missing", "unreadable", "empty", "only a newline"}

// withUnusable returns a copy of files with secret made unusable in the way
// what names (one of unusable). An unreadable file is a directory
// (secretFiles).
func withUnusable(files map[string][]byte, secret, what string) map[string][]byte {
	out := maps.Clone(files)
	switch what {
	case "missing":
		delete(out, secret)
	case "unreadable":
		out[secret] = nil
	case "empty":
		out[secret] = []byte{}
	case "only a newline":
		out[secret] = []byte("\n")
	default:
		panic("withUnusable: " + what)
	}
	return out
}

// wantNamedRefusal fails the test unless out is service's refusal naming
// secret and shows none of values.
func wantNamedRefusal(t *testing.T, what, service, secret, out string, started bool, values ...string) {
	t.Helper()
	if started {
		t.Errorf("%s: %s started, want it stopped", what, service)
	}
	// An empty log and a restarting container tell the operator nothing:
	// the line names the service and the secret.
	if want := service + " not started, the secret " + secret; !strings.Contains(out, want) {
		t.Errorf("%s: output %q lacks %q", what, out, want)
	}
	for _, v := range values {
		if shows(out, strings.TrimSpace(v)) {
			t.Errorf("%s: output %q shows a secret's value", what, out)
		}
	}
}

// RabbitMQ creates its user shop from rabbitmq-password, Meilisearch takes
// its master key from meili-master-key: a good file starts each with the
// value (its trailing newline stripped); a file that is missing, unreadable
// or empty stops it with a line naming the secret, where `set -e` alone
// stopped it without a word. (Kong's two secrets:
// TestKongTakesItsRedisPasswordFromItsSecret.)
func TestAServiceNamesAnUnusableSecret(t *testing.T) {
	for _, tc := range []struct{ service, program, variable, secret, value string }{
		{"rabbitmq", "docker-entrypoint.sh", "RABBITMQ_DEFAULT_PASS", "rabbitmq-password", "rabbit0123abcd"},
		{"meilisearch", "/bin/meilisearch", "MEILI_MASTER_KEY", "meili-master-key", "meili0123abcdef0123"},
	} {
		t.Run(tc.service, func(t *testing.T) {
			good := map[string][]byte{tc.secret: []byte(tc.value + "\n")}
			if started, got, out := composeStart(t, tc.service, tc.program, tc.variable, good); !started || got != tc.value {
				t.Errorf("%s with a good %s: started %t with %q (%s), want it started with the value", tc.service, tc.secret, started, got, out)
			}
			for _, what := range unusable {
				started, _, out := composeStart(t, tc.service, tc.program, tc.variable, withUnusable(good, tc.secret, what))
				wantNamedRefusal(t, tc.secret+" "+what, tc.service, tc.secret, out, started)
			}
		})
	}
}
