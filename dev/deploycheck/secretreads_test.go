package deploycheck

import (
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// composeStart runs service's `/bin/sh -c` command from docker-compose.yml
// with sh, as its container runs it: /run/secrets/ replaced by a folder
// holding files (a nil content is a directory, which not even root reads
// as a file: an unreadable secret), and program, the binary the command
// execs, replaced by a shim that writes each of variables to a file and
// exits. started says whether the shim ran, recorded holds what it wrote
// for each variable, out the command's output.
func composeStart(t *testing.T, service, program string, variables []string, files map[string][]byte) (started bool, recorded map[string]string, out string) {
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
	shim := filepath.Join(dir, "shim")
	body := "#!/bin/sh\n"
	for _, v := range variables {
		body += "printf '%s' \"$" + v + "\" > " + filepath.Join(dir, "got."+v) + "\n"
	}
	if err := os.WriteFile(shim, []byte(body+": > "+filepath.Join(dir, "started")+"\n"), 0o755); err != nil {
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
	if _, statErr := os.Stat(filepath.Join(dir, "started")); statErr != nil {
		return false, nil, string(b)
	}
	if err != nil {
		t.Errorf("%s's command started %s and then failed: %v (%s)", service, program, err, b)
	}
	recorded = map[string]string{}
	for _, v := range variables {
		rec, readErr := os.ReadFile(filepath.Join(dir, "got."+v))
		if readErr != nil {
			t.Fatalf("%s's shim wrote no %s: %v", service, v, readErr)
		}
		recorded[v] = string(rec)
	}
	return true, recorded, string(b)
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
			if started, got, out := composeStart(t, tc.service, tc.program, []string{tc.variable}, good); !started || got[tc.variable] != tc.value {
				t.Errorf("%s with a good %s: started %t with %q (%s), want it started with the value", tc.service, tc.secret, started, got, out)
			}
			for _, what := range unusable {
				started, _, out := composeStart(t, tc.service, tc.program, []string{tc.variable}, withUnusable(good, tc.secret, what))
				wantNamedRefusal(t, tc.secret+" "+what, tc.service, tc.secret, out, started)
			}
		})
	}
}

// silentRefusals reports every shape of script that stops on an empty
// secret without a line saying so, and none of the shapes that either say
// so or do not stop the script (CheckSecretReads' comment lists them).
func TestOnlyASilentRefusalOfAnEmptySecretIsReported(t *testing.T) {
	const loud = `{ echo "s not started, the secret p is missing, unreadable or empty" >&2; exit 1; }`
	for _, tc := range []struct {
		name, script string
		want         []string // the variables reported, in order
	}{
		// Silent: under set -e each stops the script with no line, or
		// prints one that says nothing.
		{"bare test", `set -e; [ -n "$p" ]; exec prog`, []string{"p"}},
		{"exit without a word", `set -e; [ -n "$p" ] || exit 1; exec prog`, []string{"p"}},
		{"-z and exit", `set -e; [ -z "$p" ] && exit 1; exec prog`, []string{"p"}},
		{"-z and a group that only exits", `set -e; [ -z "$p" ] && { exit 3; }; exec prog`, []string{"p"}},
		{"test -n", `set -e; test -n "$p"; exec prog`, []string{"p"}},
		{"test -z and exit", `set -e; test -z "$p" && exit 2; exec prog`, []string{"p"}},
		{"a default", `set -e; [ -n "${p:-}" ]; exec prog`, []string{"p"}},
		{"braces", `set -e; [ -n "${p}" ]; exec prog`, []string{"p"}},
		{"a bare operand", `set -e; [ "$p" ]; exec prog`, []string{"p"}},
		{"not -z", `set -e; [ ! -z "$p" ]; exec prog`, []string{"p"}},
		{"unquoted", `set -e; [ -n $p ]; exec prog`, []string{"p"}},
		{"two spaces", `set -e; [  -n  "$p" ]; exec prog`, []string{"p"}},
		{"a line break for a separator", "set -e\n[ -n \"$p\" ]\nexec prog", []string{"p"}},
		{"an empty echo", `set -e; [ -n "$p" ] || { echo >&2; exit 1; }; exec prog`, []string{"p"}},
		{"an empty printf", `set -e; [ -n "$p" ] || { printf '' >&2; exit 1; }; exec prog`, []string{"p"}},
		{"a line to stdout", `set -e; [ -n "$p" ] || { echo "s not started, the secret p is empty"; exit 1; }; exec prog`, []string{"p"}},
		{"a line that does not say it stops", `set -e; [ -n "$p" ] || { echo "p" >&2; exit 1; }; exec prog`, []string{"p"}},
		{"a group that does not exit", `set -e; [ -n "$p" ] || { echo "s not started, the secret p is empty" >&2; }; exec prog`, []string{"p"}},
		{"an exit 0", `set -e; [ -n "$p" ] || { echo "s not started, the secret p is empty" >&2; exit 0; }; exec prog`, []string{"p"}},
		{"the last of an and-list", `set -e; [ -n "$a" ] && [ -n "$b" ]; exec prog`, []string{"b"}},
		{"a script without a read", `set -e; [ -n "$P" ]; exec prog --password "$P"`, []string{"P"}},
		{"a test after a case", `set -e; case $p in *[!0-9a-z]*) echo "s not started, bad p" >&2; exit 1;; esac; [ -n "$q" ]; exec prog`, []string{"q"}},
		{"two", `set -e; [ -n "$p" ]; [ -n "$q" ] || exit 1; exec prog`, []string{"p", "q"}},

		// Loud, or no refusal at all.
		{"a named refusal", `set -e; p=$(cat F) || p=; [ -n "$p" ] || ` + loud + `; exec prog`, nil},
		{"printf", `set -e; [ -n "$p" ] || { printf 's not started, the secret p is empty\n' >&2; exit 1; }; exec prog`, nil},
		{"a group on lines", "set -e\n[ -n \"$p\" ] || {\n  echo \"s not started, the secret p is empty\" >&2\n  exit 1\n}\nexec prog", nil},
		{"the redirection first", `set -e; [ -n "$p" ] || { >&2 echo "s not started, the secret p is empty"; exit 1; }; exec prog`, nil},
		{"the redirection before the line", `set -e; [ -n "$p" ] || { echo >&2 "s not started, the secret p is empty"; exit 1; }; exec prog`, nil},
		{"the redirection against the line", `set -e; [ -n "$p" ] || { echo "s not started, the secret p is empty">&2; exit 1; }; exec prog`, nil},
		{"a line break after ||", "set -e; [ -n \"$p\" ] ||\n  " + loud + "\nexec prog", nil},
		{"-z with a named refusal", `set -e; [ -z "$p" ] && ` + loud + `; exec prog`, nil},
		{"test with a named refusal", `set -e; test -n "$p" || ` + loud + `; exec prog`, nil},
		{"an if", `set -e; if [ -n "$p" ]; then exec prog; fi; echo "s not started" >&2; exit 1`, nil},
		{"the second test of an if", `set -e; if [ -n "$a" ] && [ -n "$b" ]; then exec prog; fi`, nil},
		{"an if on a line", "set -e\nif [ -z \"$a\" ] || [ -n \"$b\" ]\nthen exit 1\nfi", nil},
		{"a negated if", `set -e; if ! [ -n "$p" ]; then echo "s not started" >&2; exit 1; fi`, nil},
		{"an elif, a while and an until", `set -e; if false; then :; elif [ -n "$a" ]; then :; fi; while [ -n "$b" ]; do b=; done; until [ -n "$c" ]; do c=1; done`, nil},
		{"an and-list with one refusal", `set -e; [ -n "$a" ] && [ -n "$b" ] || ` + loud + `; exec prog`, nil},
		{"an and-list goes on", `set -e; [ -n "$x" ] && export X="$x"; exec prog`, nil},
		{"-z sets a default", `set -e; [ -z "$x" ] && x=1; exec prog`, nil},
		{"-z or", `set -e; [ -z "$x" ] || echo "x is set"; exec prog`, nil},
		{"a negated test", `set -e; ! [ -n "$x" ]; exec prog`, nil},
		{"a test inside a substitution", `set -e; y=$([ -n "$x" ] && echo 1); exec prog`, nil},
		{"a quoted test", `set -e; echo "[ -n \"$x\" ]"; echo '[ -n "$y" ]'; exec prog`, nil},
		{"a test of no variable", `set -e; [ -n "abc" ]; [ -f /etc/x ]; exec prog`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := silentRefusals("s", tc.script)
			var got []string
			for _, err := range errs {
				m := regexp.MustCompile(`when \$(\w+) is empty`).FindStringSubmatch(err.Error())
				if m == nil || !strings.HasPrefix(err.Error(), "service s: ") {
					t.Fatalf("finding %q does not name the service and the variable", err)
				}
				got = append(got, m[1])
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("silentRefusals(%q) reported %v (%v), want %v", tc.script, got, errs, tc.want)
			}
		})
	}
}
