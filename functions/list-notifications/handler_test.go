package function

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/notifications"
	"github.com/shopfaas/shop/internal/notifications/notificationsdb"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/users/usersdb"
)

func seed(t *testing.T, s *notificationsdb.Store, user uuid.UUID, typ string) notifications.Notification {
	t.Helper()
	id, _ := uuid.NewV7()
	n, err := notifications.New(notifications.Event{ID: id, Type: typ, UserID: user, OrderID: uuid.New()}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	stored, _, err := s.Record(context.Background(), "test", n)
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

// Each user sees only their own notifications, newest first, page by page.
func TestOwnNotificationsPaged(t *testing.T) {
	store := notificationsdb.New(pgtest.Open(t, usersdb.Migrations()))
	tokens := fntest.Tokens(t, time.Hour)
	h := New(store, tokens, slog.New(slog.NewTextHandler(io.Discard, nil)))
	alice, bob := uuid.New(), uuid.New()
	var want []uuid.UUID
	for _, typ := range []string{events.OrderPlaced, events.OrderCancelled, events.OrderPaymentFailed} {
		want = append([]uuid.UUID{seed(t, store, alice, typ).ID}, want...)
	}
	bobs := seed(t, store, bob, events.OrderPlaced)
	tok := fntest.Issue(t, tokens, alice, auth.RoleCustomer)
	var got []uuid.UUID
	cursor := ""
	for range 5 {
		target := "/api/v1/users/me/notifications?limit=2"
		if cursor != "" {
			target += "&cursor=" + cursor
		}
		page := fntest.JSON[Page](t, fntest.Do(t, h, http.MethodGet, target, "", "", "Authorization", "Bearer "+tok), 200)
		for _, it := range page.Items {
			got = append(got, it.ID)
			if it.OrderID == nil || it.Type == "" || it.Subject == "" || it.CreatedAt.IsZero() {
				t.Errorf("incomplete item %+v", it)
			}
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("alice's notifications (-want +got):\n%s", diff)
	}
	for _, id := range got {
		if id == bobs.ID {
			t.Error("alice saw bob's notification")
		}
	}
	// Alice's id in the query and in headers is not read: bob lists his
	// own notification alone.
	planted := fntest.JSON[Page](t, fntest.Do(t, h, http.MethodGet, "/api/v1/users/me/notifications"+fntest.PlantedQuery(alice), "", "",
		append([]string{"Authorization", "Bearer " + fntest.Issue(t, tokens, bob, auth.RoleCustomer)}, fntest.PlantedHeaders(alice)...)...), 200)
	if len(planted.Items) != 1 || planted.Items[0].ID != bobs.ID {
		t.Errorf("bob with alice's id planted in the query and headers lists %+v, want his own notification alone", planted.Items)
	}
	fntest.Problem(t, fntest.Do(t, h, http.MethodGet, "/api/v1/users/me/notifications", "", ""), 401, "unauthenticated")
	fntest.Problem(t, fntest.Do(t, h, http.MethodGet, "/api/v1/users/me/notifications?cursor=nope", "", "", "Authorization", "Bearer "+tok), 422, "invalid_cursor")
	// The zero id would be taken for the first page.
	fntest.Problem(t, fntest.Do(t, h, http.MethodGet, "/api/v1/users/me/notifications?cursor="+uuid.Nil.String(), "", "", "Authorization", "Bearer "+tok), 422, "invalid_cursor")
	// A cursor is a notification's id as the list wrote it, no other spelling.
	for _, c := range []string{strings.ToUpper(want[0].String()), strings.ReplaceAll(want[0].String(), "-", ""),
		"%7B" + want[0].String() + "%7D", "urn:uuid:" + want[0].String()} {
		fntest.Problem(t, fntest.Do(t, h, http.MethodGet, "/api/v1/users/me/notifications?cursor="+c, "", "", "Authorization", "Bearer "+tok), 422, "invalid_cursor")
	}
	fntest.Problem(t, fntest.Do(t, h, http.MethodGet, "/api/v1/users/me/notifications?limit=101", "", "", "Authorization", "Bearer "+tok), 422, "invalid_request")
	empty := fntest.Issue(t, tokens, uuid.New(), auth.RoleCustomer)
	page := fntest.JSON[Page](t, fntest.Do(t, h, http.MethodGet, "/api/v1/users/me/notifications", "", "", "Authorization", "Bearer "+empty), 200)
	if page.Items == nil || len(page.Items) != 0 || page.NextCursor != nil {
		t.Errorf("empty page: %+v", page)
	}
}
