package logstore_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/openfaas/faas-provider/logs"

	"github.com/shopfaas/shop/dev/faaslocal/logstore"
	"github.com/shopfaas/shop/internal/fault"
)

// collect reads every message of a query that is not followed.
func collect(t *testing.T, s *logstore.Store, req logs.Request) []string {
	t.Helper()
	ch, err := s.Query(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for m := range ch {
		out = append(out, m.Instance+" "+m.Text)
	}
	return out
}

// A query answers the stored lines oldest first, filtered by instance and
// since, the last tail of them; a ring keeps only the newest lines.
func TestQueryAnswersTheNewestStoredLines(t *testing.T) {
	s := logstore.New(4, "openfaas-fn")
	s.Open("fn")
	for i := 1; i <= 3; i++ {
		s.Append("fn", "fn-1", "a"+strconv.Itoa(i))
	}
	since := time.Now().UTC()
	time.Sleep(2 * time.Millisecond)
	s.Append("fn", "fn-2", "b1")
	s.Append("fn", "fn-1", "a4")

	tests := []struct {
		name string
		req  logs.Request
		want []string
	}{
		{"the ring keeps the last 4", logs.Request{Name: "fn"}, []string{"fn-1 a2", "fn-1 a3", "fn-2 b1", "fn-1 a4"}},
		{"tail", logs.Request{Name: "fn", Tail: 2}, []string{"fn-2 b1", "fn-1 a4"}},
		{"instance", logs.Request{Name: "fn", Instance: "fn-1"}, []string{"fn-1 a2", "fn-1 a3", "fn-1 a4"}},
		{"since", logs.Request{Name: "fn", Since: &since}, []string{"fn-2 b1", "fn-1 a4"}},
		{"instance then tail", logs.Request{Name: "fn", Instance: "fn-1", Tail: 1}, []string{"fn-1 a4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, collect(t, s, tc.req)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestMessagesCarryNameNamespaceAndTime(t *testing.T) {
	s := logstore.New(10, "openfaas-fn")
	s.Open("fn")
	before := time.Now().UTC()
	s.Append("fn", "fn-1", "hello")
	ch, err := s.Query(context.Background(), logs.Request{Name: "fn"})
	if err != nil {
		t.Fatal(err)
	}
	m := <-ch
	if m.Name != "fn" || m.Namespace != "openfaas-fn" || m.Instance != "fn-1" || m.Text != "hello" || m.Timestamp.Before(before) {
		t.Errorf("message %+v", m)
	}
}

// A follower gets the stored lines, then every new matching line, until its
// context ends; then its channel closes.
func TestFollowDeliversNewLinesUntilCancelled(t *testing.T) {
	s := logstore.New(10, "openfaas-fn")
	s.Open("fn")
	s.Append("fn", "fn-1", "old")
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := s.Query(ctx, logs.Request{Name: "fn", Instance: "fn-1", Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	next := func() string {
		t.Helper()
		select {
		case m := <-ch:
			return m.Text
		case <-time.After(5 * time.Second):
			t.Fatal("no line")
			return ""
		}
	}
	if got := next(); got != "old" {
		t.Fatalf("first line %q, want the stored one", got)
	}
	s.Append("fn", "fn-2", "other instance")
	s.Append("fn", "fn-1", "new")
	if got := next(); got != "new" {
		t.Fatalf("followed line %q, want new (fn-2's line filtered out)", got)
	}
	cancel()
	select {
	case _, open := <-ch:
		if open {
			t.Error("a line arrived after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the channel stayed open after cancel")
	}
}

// A follower that stops reading never blocks the processes writing lines.
func TestStalledFollowerNeverBlocksWriters(t *testing.T) {
	s := logstore.New(10, "openfaas-fn")
	s.Open("fn")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := s.Query(ctx, logs.Request{Name: "fn", Follow: true}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		for i := range 5000 {
			s.Append("fn", "fn-1", strconv.Itoa(i))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Append blocked on a follower that does not read")
	}
}

// Lines of a name that was never opened are dropped, and asking for them
// is a not-found error.
func TestUnopenedNameHasNoLogs(t *testing.T) {
	s := logstore.New(10, "openfaas-fn")
	s.Append("ghost", "ghost-1", "lost")
	if s.Has("ghost") {
		t.Error("Has(ghost) before Open")
	}
	if _, err := s.Query(context.Background(), logs.Request{Name: "ghost"}); fault.KindOf(err) != fault.NotFound {
		t.Errorf("query of an unopened name: %v, want not found", err)
	}
	s.Open("ghost")
	s.Open("ghost") // opening again keeps what it has
	s.Append("ghost", "ghost-1", "kept")
	s.Open("ghost")
	if got := collect(t, s, logs.Request{Name: "ghost"}); !cmp.Equal(got, []string{"ghost-1 kept"}) {
		t.Errorf("lines %v, want only the line appended after Open", got)
	}
}

// Forget drops a name's lines and ends the queries that follow it; the name
// opened again starts empty.
func TestForgetDropsLinesAndEndsFollowers(t *testing.T) {
	s := logstore.New(10, "openfaas-fn")
	s.Open("fn")
	s.Append("fn", "fn-1", "old")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch, err := s.Query(ctx, logs.Request{Name: "fn", Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	if m := <-ch; m.Text != "old" {
		t.Fatalf("first line %q", m.Text)
	}
	s.Forget("fn")
	for m := range ch { // ends when Forget ended the follower, not at the deadline
		t.Errorf("line after Forget: %q", m.Text)
	}
	if ctx.Err() != nil {
		t.Fatal("the follower ran until its deadline")
	}
	if _, err := s.Query(context.Background(), logs.Request{Name: "fn"}); fault.KindOf(err) != fault.NotFound {
		t.Errorf("query of a forgotten name: %v, want not found", err)
	}
	s.Append("fn", "fn-1", "dropped")
	s.Open("fn")
	s.Append("fn", "fn-1", "new")
	if diff := cmp.Diff([]string{"fn-1 new"}, collect(t, s, logs.Request{Name: "fn"})); diff != "" {
		t.Errorf("after Forget and Open (-want +got):\n%s", diff)
	}
}
