package inventorydb_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/inventory"
)

// outboxRows counts the events written so far.
func outboxRows(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The review's interleaving: an administrator reads 10 on hand, 3 reserved
// for a confirmed order; the sweep then sells those 3 (7 on hand, 0
// reserved); the administrator, meaning "10 + 5 received", writes 15 on the
// version read. Written, 3 units sold already would be on hand again and sold
// twice. It is refused, nothing is written, and the refusal names the version
// to read again; a write on that version goes through.
func TestSetStockWithAStaleVersionIsRefused(t *testing.T) {
	s, pool, ids := settleStore(t, 10)
	ctx := context.Background()
	product := ids[0]
	_, book := oneHold(t, s, product, 3, inventory.OrderConfirmed)
	read, err := s.Get(ctx, product)
	if err != nil || read.OnHand != 10 || read.Reserved != 3 {
		t.Fatalf("the administrator reads %+v, %v; want 10 on hand, 3 reserved", read, err)
	}
	if got := settleAll(t, s, 0, 10, book.lookup); got.Settled != 1 {
		t.Fatalf("settle: %+v, want the confirmed order's hold sold", got)
	}
	events := outboxRows(t, pool)

	_, refusal := s.SetOnHand(ctx, product, 15, inventory.IfMatch(read.ETag()))
	if !fault.Is(refusal, fault.PreconditionFailed, fault.CodePreconditionFailed) {
		t.Fatalf("SetOnHand(15) on the version read before the sale: %v, want precondition_failed", refusal)
	}
	now, err := s.Get(ctx, product)
	if err != nil {
		t.Fatal(err)
	}
	if now.OnHand != 7 || now.Reserved != 0 {
		t.Fatalf("stock after the refused write: %+v, want 7 on hand, 0 reserved", now)
	}
	var fe *fault.Error
	if !errors.As(refusal, &fe) || !strings.Contains(fe.Message, now.ETag()) {
		t.Errorf("the refusal %q does not name the current ETag %s", refusal, now.ETag())
	}
	if got := outboxRows(t, pool); got != events {
		t.Errorf("outbox rows %d after the refused write, want %d", got, events)
	}
	// Read again: 7 + 5 received.
	st, err := s.SetOnHand(ctx, product, 12, inventory.IfMatch(now.ETag()))
	if err != nil || st.OnHand != 12 || st.Version <= now.Version {
		t.Fatalf("SetOnHand(12) on the current version: %+v, %v", st, err)
	}
}

// A cancel's restock racing an administrator's write: the write decided on
// the level before the restock would drop the restocked units. It is refused.
func TestSetStockAfterARestockIsRefused(t *testing.T) {
	s, _, ids := settleStore(t, 10)
	ctx := context.Background()
	product := ids[0]
	order, _ := oneHold(t, s, product, 4, inventory.OrderConfirmed)
	if _, err := s.Commit(ctx, order); err != nil {
		t.Fatal(err)
	}
	read, err := s.Get(ctx, product) // 6 on hand
	if err != nil {
		t.Fatal(err)
	}
	if h, err := s.Release(ctx, order); err != nil || h.Status != inventory.StatusRestocked {
		t.Fatalf("restock: %+v, %v", h, err)
	}
	if _, err := s.SetOnHand(ctx, product, 8, inventory.IfMatch(read.ETag())); !fault.Is(err, fault.PreconditionFailed, "") {
		t.Fatalf("SetOnHand(8) on the version read before the restock: %v, want precondition_failed", err)
	}
	if got := stockLevel(t, s, product); got != (level{10, 0}) {
		t.Fatalf("stock %+v, want {10 0}: the restocked units are kept", got)
	}
}

// Every precondition is decided on the row as it is; a refused one writes
// nothing, not even a row for a product never stocked.
func TestSetStockPreconditions(t *testing.T) {
	s, pool := openStore(t)
	ctx := context.Background()
	stocked, other, never := newID(), newID(), newID()
	for _, id := range []uuid.UUID{stocked, other} {
		if _, err := s.Init(ctx, id, 5); err != nil {
			t.Fatal(err)
		}
	}
	cur, err := s.Get(ctx, stocked)
	if err != nil {
		t.Fatal(err)
	}
	otherCur, err := s.Get(ctx, other)
	if err != nil || otherCur.Version != cur.Version {
		t.Fatalf("the other product's version %d, %v: want %d, so that only the id tells the tags apart", otherCur.Version, err, cur.Version)
	}
	refused := []struct {
		name    string
		product uuid.UUID
		pre     inventory.Precondition
		kind    fault.Kind
	}{
		{"no precondition", stocked, inventory.Precondition{}, fault.PreconditionRequired},
		{"no precondition, never stocked", never, inventory.Precondition{}, fault.PreconditionRequired},
		{"If-None-Match: * on a stocked product", stocked, inventory.IfAbsent(), fault.PreconditionFailed},
		{"If-Match: * on a product never stocked", never, inventory.IfExists(), fault.PreconditionFailed},
		{"If-Match on a product never stocked", never, inventory.IfMatch(cur.ETag()), fault.PreconditionFailed},
		{"weak tag", stocked, inventory.IfMatch("W/" + cur.ETag()), fault.PreconditionFailed},
		{"unquoted tag", stocked, inventory.IfMatch(strings.Trim(cur.ETag(), `"`)), fault.PreconditionFailed},
		{"another product's tag at the same version", stocked, inventory.IfMatch(otherCur.ETag()), fault.PreconditionFailed},
		{"an empty list", stocked, inventory.IfMatch(), fault.PreconditionFailed},
	}
	events := outboxRows(t, pool)
	for _, c := range refused {
		if _, err := s.SetOnHand(ctx, c.product, 9, c.pre); fault.KindOf(err) != c.kind {
			t.Errorf("%s: %v, want kind %v", c.name, err, c.kind)
		}
	}
	if _, err := s.Get(ctx, never); !fault.Is(err, fault.NotFound, "") {
		t.Errorf("a refused first write created a stock row: %v", err)
	}
	if got, err := s.Get(ctx, stocked); err != nil || got.Version != cur.Version || got.OnHand != cur.OnHand {
		t.Errorf("stock after refused writes: %+v, %v; want %+v", got, err, cur)
	}
	if got := outboxRows(t, pool); got != events {
		t.Errorf("outbox rows %d after refused writes, want %d", got, events)
	}

	// One tag of a list matching is enough; If-Match: * overwrites whatever
	// the level is; If-None-Match: * stocks a new product.
	st, err := s.SetOnHand(ctx, stocked, 9, inventory.IfMatch(`"nope"`, cur.ETag()))
	if err != nil || st.OnHand != 9 {
		t.Fatalf("If-Match list with the current tag: %+v, %v", st, err)
	}
	if st, err = s.SetOnHand(ctx, stocked, 4, inventory.IfExists()); err != nil || st.OnHand != 4 {
		t.Fatalf("If-Match: *: %+v, %v", st, err)
	}
	if st, err = s.SetOnHand(ctx, never, 3, inventory.IfAbsent()); err != nil || st.OnHand != 3 || st.Version != 1 {
		t.Fatalf("If-None-Match: * on a product never stocked: %+v, %v", st, err)
	}
}

// Administrators who read the same version and write at once: exactly one
// write lands, the others are refused (412) and the level is the winner's.
// So are racing first stockings of one product.
func TestOnlyOneOfRacingConditionalWritesWins(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	race := func(t *testing.T, product uuid.UUID, pre inventory.Precondition) {
		t.Helper()
		const writers = 20
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []int
			others  []error
		)
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.SetOnHand(ctx, product, 100+i, pre)
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					winners = append(winners, 100+i)
				} else if !fault.Is(err, fault.PreconditionFailed, fault.CodePreconditionFailed) {
					others = append(others, err)
				}
			}()
		}
		wg.Wait()
		if len(winners) != 1 || len(others) != 0 {
			t.Fatalf("%d writers: winners %v, errors other than precondition_failed %v; want exactly one winner", writers, winners, others)
		}
		if got := stockLevel(t, s, product); got.OnHand != winners[0] {
			t.Errorf("on_hand %d, want the winner's %d", got.OnHand, winners[0])
		}
	}
	t.Run("If-Match on the version read", func(t *testing.T) {
		product := newID()
		if _, err := s.Init(ctx, product, 10); err != nil {
			t.Fatal(err)
		}
		read, err := s.Get(ctx, product)
		if err != nil {
			t.Fatal(err)
		}
		race(t, product, inventory.IfMatch(read.ETag()))
	})
	t.Run("If-None-Match: * on a product never stocked", func(t *testing.T) {
		race(t, newID(), inventory.IfAbsent())
	})
}
