package function

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
	"github.com/shopfaas/shop/internal/orders/orderstest"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

func TestTimeline(t *testing.T) {
	store := ordersdb.New(pgtest.Open(t, ordersdb.Migrations()))
	tokens := orderstest.Tokens(t)
	h := New(store, tokens, slog.New(slog.DiscardHandler))
	owner := orderstest.NewUser(t, tokens, auth.RoleCustomer)
	other := orderstest.NewUser(t, tokens, auth.RoleCustomer)
	admin := orderstest.NewUser(t, tokens, auth.RoleAdmin)
	o := orderstest.Seed(t, store, owner.UserID, orders.Confirmed)
	// The refund is recorded inside a trace, the seeded steps outside any.
	tid := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	traced := trace.ContextWithSpanContext(t.Context(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: trace.SpanID{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}, TraceFlags: trace.FlagsSampled}))
	if err := store.Record(traced, o.ID, ordersdb.Note{Step: orders.StepRefund, Outcome: orders.StepOK, Detail: "note"}); err != nil {
		t.Fatal(err)
	}
	path := "/api/v1/orders/" + o.ID.String() + "/timeline"
	for _, tt := range []struct {
		name   string
		user   orderstest.User
		status int
	}{{"owner", owner, 200}, {"admin", admin, 200}, {"another user", other, 404}, {"no token", orderstest.User{}, 401}} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, tt.user.Authorize(httptest.NewRequest(http.MethodGet, path, nil)))
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.status != 200 {
				return
			}
			var got struct{ Steps []orders.Step }
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			var names []string
			for i, s := range got.Steps {
				names = append(names, s.Step+":"+s.Outcome+":"+s.TraceID)
				if s.At.IsZero() || (i > 0 && s.At.Before(got.Steps[i-1].At)) {
					t.Fatalf("step %d at %v is out of order", i, s.At)
				}
			}
			want := []string{"order.created:ok:", "order.confirmed:ok:", "payment.refund:ok:4bf92f3577b34da6a3ce929d0e0e4736"}
			if !strings.Contains(rec.Body.String(), `"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"`) {
				t.Fatalf("the answer does not name the trace: %s", rec.Body)
			}
			if diff := cmp.Diff(want, names); diff != "" {
				t.Fatalf("steps (-want +got):\n%s", diff)
			}
		})
	}
}

// A timeline is answered a page at a time: at most limit entries (100 when
// not asked), oldest first, and a next_cursor for the rest, so one answer
// stays bounded however many entries an order has. A bad limit or cursor is
// 422.
func TestATimelineIsAnsweredAPageAtATime(t *testing.T) {
	store := ordersdb.New(pgtest.Open(t, ordersdb.Migrations()))
	tokens := orderstest.Tokens(t)
	h := New(store, tokens, slog.New(slog.DiscardHandler))
	owner := orderstest.NewUser(t, tokens, auth.RoleCustomer)
	o := orderstest.Seed(t, store, owner.UserID, orders.Pending)
	before := len(timelinePage(t, h, owner, o.ID.String(), "").Steps)
	const extra = 250
	notes := make([]ordersdb.Note, extra)
	for i := range notes {
		notes[i] = ordersdb.Note{Step: orders.StepCharge, Outcome: orders.StepError, Detail: fmt.Sprintf("attempt %d", i+1)}
	}
	if err := store.Record(t.Context(), o.ID, notes...); err != nil {
		t.Fatal(err)
	}
	first := timelinePage(t, h, owner, o.ID.String(), "")
	if len(first.Steps) != 100 || first.NextCursor == nil {
		t.Fatalf("first page without a limit: %d entries, next_cursor %v; want 100 and a cursor", len(first.Steps), first.NextCursor)
	}
	var all []string
	query := "?limit=40"
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("more pages than entries")
		}
		p := timelinePage(t, h, owner, o.ID.String(), query)
		if len(p.Steps) > 40 {
			t.Fatalf("a page of %d entries, want at most 40", len(p.Steps))
		}
		for _, s := range p.Steps {
			all = append(all, s.Step+":"+s.Detail)
		}
		if p.NextCursor == nil {
			break
		}
		query = "?limit=40&cursor=" + *p.NextCursor
	}
	if len(all) != before+extra || all[before] != "payment.charge:attempt 1" || all[len(all)-1] != "payment.charge:attempt 250" {
		t.Fatalf("the pages hold %d entries (want %d), in order: %v", len(all), before+extra, all)
	}
	for q, code := range map[string]string{"?limit=0": "invalid_request", "?limit=501": "invalid_request",
		"?cursor=x": "invalid_cursor", "?cursor=0": "invalid_cursor", "?cursor=-3": "invalid_cursor",
		"?cursor=p0": "invalid_cursor", "?cursor=p05": "invalid_cursor",
		"?cursor=40": "invalid_cursor"} { // the old form, a shop-wide sequence number
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, owner.Authorize(httptest.NewRequest(http.MethodGet, "/api/v1/orders/"+o.ID.String()+"/timeline"+q, nil)))
		fntest.Problem(t, rec, http.StatusUnprocessableEntity, code)
	}
}

// A timeline's cursor says nothing of other orders: the next_cursor of an
// order's first page of one entry is the same whether or not 1,000 entries of
// other orders were written before it, and paging one entry at a time through
// an order whose entries were written between another order's answers each
// of its entries once, in order. Until 2026-12-06 the cursor was
// order_events.seq, shared by every order: two cursors' difference told how
// many timeline entries (roughly, checkouts) the shop had written between.
func TestATimelineCursorSaysNothingOfOtherOrders(t *testing.T) {
	store := ordersdb.New(pgtest.Open(t, ordersdb.Migrations()))
	tokens := orderstest.Tokens(t)
	h := New(store, tokens, slog.New(slog.DiscardHandler))
	owner := orderstest.NewUser(t, tokens, auth.RoleCustomer)
	quiet := orderstest.Seed(t, store, owner.UserID, orders.Confirmed)
	before := timelinePage(t, h, owner, quiet.ID.String(), "?limit=1").NextCursor

	busy := orderstest.Seed(t, store, owner.UserID, orders.Pending)
	notes := make([]ordersdb.Note, 1000)
	for i := range notes {
		notes[i] = ordersdb.Note{Step: orders.StepCharge, Outcome: orders.StepError, Detail: fmt.Sprintf("other %d", i+1)}
	}
	if err := store.Record(t.Context(), busy.ID, notes...); err != nil {
		t.Fatal(err)
	}
	later := orderstest.Seed(t, store, owner.UserID, orders.Confirmed)
	after := timelinePage(t, h, owner, later.ID.String(), "?limit=1").NextCursor
	if before == nil || after == nil || *before != *after {
		t.Fatalf("first pages' next_cursor: %v before 1,000 other entries, %v after; want the same", deref(before), deref(after))
	}

	// The later order's entries interleaved with the busy one's.
	for i := range 5 {
		for _, n := range []struct {
			id     uuid.UUID
			detail string
		}{{later.ID, fmt.Sprintf("mine %d", i+1)}, {busy.ID, "theirs"}} {
			if err := store.Record(t.Context(), n.id, ordersdb.Note{Step: orders.StepRefund, Outcome: orders.StepError, Detail: n.detail}); err != nil {
				t.Fatal(err)
			}
		}
	}
	whole := timelinePage(t, h, owner, later.ID.String(), "?limit=500")
	var want, got []string
	for _, s := range whole.Steps {
		want = append(want, s.Step+":"+s.Detail)
	}
	query := "?limit=1"
	for pages := 0; ; pages++ {
		if pages > len(want) {
			t.Fatal("more pages than entries")
		}
		p := timelinePage(t, h, owner, later.ID.String(), query)
		for _, s := range p.Steps {
			got = append(got, s.Step+":"+s.Detail)
		}
		if p.NextCursor == nil {
			break
		}
		query = "?limit=1&cursor=" + *p.NextCursor
	}
	if len(want) < 7 || want[len(want)-1] != "payment.refund:mine 5" {
		t.Fatalf("the whole timeline: %v", want)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("entries paged one at a time (-whole +paged):\n%s", diff)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

type timelineAnswer struct {
	Steps      []orders.Step
	NextCursor *string `json:"next_cursor"`
}

func timelinePage(t *testing.T, h http.Handler, who orderstest.User, id, query string) timelineAnswer {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, who.Authorize(httptest.NewRequest(http.MethodGet, "/api/v1/orders/"+id+"/timeline"+query, nil)))
	if rec.Code != http.StatusOK {
		t.Fatalf("%s: status %d: %s", query, rec.Code, rec.Body)
	}
	var a timelineAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatal(err)
	}
	return a
}
