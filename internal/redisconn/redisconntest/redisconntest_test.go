package redisconntest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The rules come from the redis service's command alone, compose's "$$"
// escaping undone: a line of the same shape elsewhere (a comment, another
// service) is not read (until a review of 2026-12-06 a regular expression
// over the whole file took the first such line).
func TestComposeRulesReadsOnlyTheRedisServicesCommand(t *testing.T) {
	const compose = `services:
  # An example in a comment:
  #   user kong on >$$k +@all
  other:
    command:
      - /bin/sh
      - -c
      - |
        cat > /tmp/example <<EOF
        user kong on >$$x +flushall
        EOF
  redis:
    command:
      - /bin/sh
      - -c
      - |
        exec redis-server - <<EOF
        user default on >$$p +ping
        user kong on >$$k resetkeys ~ratelimit:* -@all +eval
        EOF
`
	got, err := composeRules([]byte(compose), "kong")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"resetkeys", "~ratelimit:*", "-@all", "+eval"}, got); diff != "" {
		t.Errorf("kong's rules (-want +got):\n%s", diff)
	}
	if _, err := composeRules([]byte("services:\n  redis:\n    command: [\"redis-server\"]\n  other:\n    command: \"user kong on >$$k +@all\"\n"), "kong"); err == nil {
		t.Error("a compose file whose redis command names no kong user: no error")
	}
}
