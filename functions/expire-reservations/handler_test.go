package function

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// credential is a caller expire-reservations accepts.
var credential = fntest.Caller("scheduler")

func post(h http.Handler, cred string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"anything":"the scheduler sends"}`))
	if cred != "" {
		req.Header.Set(auth.InternalHeader, cred)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// backdate makes every hold of pool due now.
func backdate(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `UPDATE reservations SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
}

func TestExpireReservations(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, inventorydb.Migrations())
	store := inventorydb.New(pool)
	h := New(store, fntest.Internal(), slog.New(slog.DiscardHandler))
	product := uuid.Must(uuid.NewV7())
	if _, err := store.SetOnHand(ctx, product, 100); err != nil {
		t.Fatal(err)
	}
	const orders = 40
	for range orders {
		req, err := inventory.NewHoldRequest(uuid.Must(uuid.NewV7()), []inventory.Line{{ProductID: product, Quantity: 1}}, 60)
		if err == nil {
			_, err = store.Reserve(ctx, req)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if rec := post(h, ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("no credential: %d", rec.Code)
	}
	if rec := post(h, credential); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"expired":0`) {
		t.Errorf("nothing due: %d %s", rec.Code, rec.Body)
	}
	backdate(t, pool)
	// Only the scheduler and an operator may sweep: every other valid
	// caller is 403 and releases nothing.
	if n := fntest.RefusesOtherCallers(t, h, "expire-reservations", `{}`); n == 0 {
		t.Fatal("no caller to refuse")
	}
	if st, _ := store.Get(ctx, product); st.Reserved != orders {
		t.Fatalf("a refused caller released holds: reserved %d, want %d", st.Reserved, orders)
	}
	var wg sync.WaitGroup
	results := make([]Response, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := post(h, credential)
			if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &results[i]) != nil {
				t.Errorf("sweep %d: %d %s", i, rec.Code, rec.Body)
			}
		}()
	}
	wg.Wait()
	if got := results[0].Expired + results[1].Expired; got != orders {
		t.Errorf("two sweeps expired %d holds in total, want %d", got, orders)
	}
	if st, _ := store.Get(ctx, product); st.Reserved != 0 || st.OnHand != 100 {
		t.Errorf("stock %+v after the sweep, want 100/0", st)
	}
}
