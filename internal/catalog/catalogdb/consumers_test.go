package catalogdb_test

import (
	"context"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// The consumers' processed events (internal/inbox), with the index the
// relay's cleanup needs.
func TestMigrationHasInbox(t *testing.T) {
	for file, want := range map[string]string{
		"0002_inbox.sql":                   inbox.Schema,
		"0006_processed_events_by_age.sql": inbox.PruneIndex,
	} {
		b, err := fs.ReadFile(catalogdb.Migrations(), file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s does not include %q verbatim", file, want)
		}
	}
}

func TestAddSoldOncePerEvent(t *testing.T) {
	ctx := context.Background()
	s := catalogdb.New(pgtest.Open(t, catalogdb.Migrations()))
	a, b := create(t, s, "A-1"), create(t, s, "B-1")
	order := uuid.Must(uuid.NewV7())
	placed, _ := uuid.NewV7()
	deltas := []catalog.SoldDelta{{ProductID: a.ID, Delta: 2}, {ProductID: b.ID, Delta: 1}, {ProductID: a.ID, Delta: 1}, {ProductID: uuid.New(), Delta: 5}}
	got, first, err := s.AddSold(ctx, placed, "stats", order, false, deltas)
	if err != nil || !first || len(got) != 2 {
		t.Fatalf("AddSold: %d products, first %v, %v", len(got), first, err)
	}
	if got, first, err = s.AddSold(ctx, placed, "stats", order, false, deltas); err != nil || first || len(got) != 0 {
		t.Errorf("duplicate: %d products, first %v, %v", len(got), first, err)
	}
	pa, _ := s.Get(ctx, a.ID)
	if pa.SoldCount != 3 {
		t.Errorf("sold %d, want 3", pa.SoldCount)
	}
	cancelled, _ := uuid.NewV7()
	if _, _, err := s.AddSold(ctx, cancelled, "stats", order, true, []catalog.SoldDelta{{ProductID: a.ID, Delta: -3}, {ProductID: b.ID, Delta: -1}}); err != nil {
		t.Fatal(err)
	}
	if pa, _ = s.Get(ctx, a.ID); pa.SoldCount != 0 {
		t.Errorf("sold %d after the cancellation, want 0", pa.SoldCount)
	}
	// A second cancellation event of the same order (another event id)
	// subtracts nothing more.
	b2 := create(t, s, "C-1")
	other := uuid.Must(uuid.NewV7())
	if _, _, err := s.AddSold(ctx, uuid.Must(uuid.NewV7()), "stats", other, false, []catalog.SoldDelta{{ProductID: b2.ID, Delta: 4}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AddSold(ctx, uuid.Must(uuid.NewV7()), "stats", order, true, []catalog.SoldDelta{{ProductID: b2.ID, Delta: -4}}); err != nil {
		t.Fatal(err)
	}
	if pb2, _ := s.Get(ctx, b2.ID); pb2.SoldCount != 4 {
		t.Errorf("sold %d: a repeated cancellation subtracted again", pb2.SoldCount)
	}
}

// A cancellation delivered before its placement makes the late placement count
// nothing: sold_count ends where it started.
func TestAddSoldCancellationFirst(t *testing.T) {
	ctx := context.Background()
	s := catalogdb.New(pgtest.Open(t, catalogdb.Migrations()))
	a := create(t, s, "A-1")
	order := uuid.Must(uuid.NewV7())
	if _, _, err := s.AddSold(ctx, uuid.Must(uuid.NewV7()), "stats", order, true, []catalog.SoldDelta{{ProductID: a.ID, Delta: -2}}); err != nil {
		t.Fatal(err)
	}
	got, first, err := s.AddSold(ctx, uuid.Must(uuid.NewV7()), "stats", order, false, []catalog.SoldDelta{{ProductID: a.ID, Delta: 2}})
	if err != nil || !first || len(got) != 0 {
		t.Fatalf("late placement: %d products changed, first %v, %v", len(got), first, err)
	}
	if pa, _ := s.Get(ctx, a.ID); pa.SoldCount != 0 {
		t.Errorf("sold %d after cancel-then-place, want 0", pa.SoldCount)
	}
}

func TestSetAvailabilityOnce(t *testing.T) {
	ctx := context.Background()
	s := catalogdb.New(pgtest.Open(t, catalogdb.Migrations()))
	p := create(t, s, "A-1")
	ev, _ := uuid.NewV7()
	got, first, changed, err := s.SetAvailabilityOnce(ctx, ev, "index", p.ID, true, 5)
	if err != nil || !first || !changed || !got.InStock {
		t.Fatalf("first: %+v %v %v %v", got, first, changed, err)
	}
	if _, first, changed, err = s.SetAvailabilityOnce(ctx, ev, "index", p.ID, false, 6); err != nil || first || changed {
		t.Errorf("duplicate applied: %v %v %v", first, changed, err)
	}
	if cur, _ := s.Current(ctx, p.ID); !cur.InStock {
		t.Error("duplicate changed in_stock")
	}
	// An older stock event delivered late is claimed but changes nothing.
	late, _ := uuid.NewV7()
	if _, first, changed, err = s.SetAvailabilityOnce(ctx, late, "index", p.ID, false, 4); err != nil || !first || changed {
		t.Errorf("late event: first %v changed %v err %v", first, changed, err)
	}
	if cur, _ := s.Current(ctx, p.ID); !cur.InStock {
		t.Error("a late, older stock event overwrote in_stock")
	}
	// A newer one applies.
	newer, _ := uuid.NewV7()
	if got, _, changed, err = s.SetAvailabilityOnce(ctx, newer, "index", p.ID, false, 7); err != nil || !changed || got.InStock {
		t.Errorf("newer event: %+v changed %v err %v", got, changed, err)
	}
	other, _ := uuid.NewV7()
	if _, _, _, err := s.SetAvailabilityOnce(ctx, other, "index", uuid.New(), true, 1); !fault.Is(err, fault.NotFound, "") {
		t.Errorf("unknown product: %v", err)
	}
}
