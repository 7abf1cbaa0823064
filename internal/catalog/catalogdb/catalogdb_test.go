package catalogdb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/outbox"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

func TestMigrationHasOutbox(t *testing.T) {
	b, err := fs.ReadFile(catalogdb.Migrations(), "0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), outbox.Schema) {
		t.Error("0001_init.sql does not include outbox.Schema verbatim")
	}
}

func create(t *testing.T, s *catalogdb.Store, sku string) catalog.Product {
	t.Helper()
	p, err := catalog.NewProduct(catalog.Draft{SKU: sku, Name: "Lamp " + sku, Category: "home",
		Price: catalog.Money{Amount: 100}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if p, err = s.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

// A write answers the product as a read gives it: one ETag ("<id>-<version>")
// is one body, in the write's answer, its product.changed.v1 and every read.
// Until 2026-12-05 the write answered its times with the nanoseconds of Go's
// clock, which timestamptz does not keep.
// The bodies are compared as JSON (cmp and time.Time.Equal ignore the
// zone), and a read's times must be in UTC itself, not the process's zone
// (pgx reads a timestamptz in time.Local, which is UTC only on a machine set
// to it: on many developer machines the write's answer and a read differed
// by their offset).
func TestAWritesAnswerIsWhatAReadGives(t *testing.T) {
	s := catalogdb.New(pgtest.Open(t, catalogdb.Migrations()))
	ctx := context.Background()
	same := func(what string, read, answer catalog.Product) {
		t.Helper()
		r, _ := json.Marshal(read)
		a, _ := json.Marshal(answer)
		if string(r) != string(a) {
			t.Errorf("%s's answer against the read:\n answer %s\n read   %s", what, a, r)
		}
		if read.CreatedAt.Location() != time.UTC || read.UpdatedAt.Location() != time.UTC {
			t.Errorf("%s: a read's times are in %s and %s, want UTC", what, read.CreatedAt.Location(), read.UpdatedAt.Location())
		}
	}
	created := create(t, s, "LAMP-2")
	got, err := s.Get(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	same("create", got, created)
	updated, err := s.Update(ctx, created.ID, func(p catalog.Product, now time.Time) (catalog.Product, error) {
		return catalog.Apply(p, catalog.Patch{Name: catalog.Optional[string]{Set: true, Value: "Lamp two"}}, now)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err = s.Get(ctx, created.ID); err != nil {
		t.Fatal(err)
	}
	same("update", got, updated)
}

// Twenty concurrent updates each apply once: the row lock serialises them, no
// change is lost, and each writes its event.
func TestConcurrentUpdates(t *testing.T) {
	s := catalogdb.New(pgtest.Open(t, catalogdb.Migrations()))
	p := create(t, s, "LAMP-1")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Update(context.Background(), p.ID, func(p catalog.Product, now time.Time) (catalog.Product, error) {
				return catalog.Apply(p, catalog.Patch{Description: catalog.Optional[string]{Set: true,
					Value: p.Description + fmt.Sprint(i%10)}}, now)
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := s.Get(context.Background(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 21 || len(got.Description) != 20 {
		t.Errorf("version %d, description %q: updates were lost", got.Version, got.Description)
	}
	if n, _ := s.CountEvents(context.Background(), p.ID); n != 21 {
		t.Errorf("%d events, want 21", n)
	}
}

func TestCounters(t *testing.T) {
	ctx := context.Background()
	s := catalogdb.New(pgtest.Open(t, catalogdb.Migrations()))
	p := create(t, s, "LAMP-1")
	got, err := s.SetAvailability(ctx, p.ID, true)
	if err != nil || !got.InStock || got.Version != 2 {
		t.Fatalf("SetAvailability: %+v %v", got, err)
	}
	if got, err = s.SetAvailability(ctx, p.ID, true); err != nil || got.Version != 2 {
		t.Errorf("unchanged availability bumped the version: %+v %v", got, err)
	}
	if got, err = s.SetSoldCount(ctx, p.ID, 7); err != nil || got.SoldCount != 7 || got.Version != 3 {
		t.Errorf("SetSoldCount: %+v %v", got, err)
	}
	if n, _ := s.CountEvents(ctx, p.ID); n != 3 {
		t.Errorf("%d events, want 3", n)
	}
	if _, err := s.SetSoldCount(ctx, p.ID, -1); !fault.Is(err, fault.Invalid, "") {
		t.Errorf("negative sold count: %v", err)
	}
	if _, err := s.SetAvailability(ctx, uuid.New(), true); !fault.Is(err, fault.NotFound, "") {
		t.Errorf("unknown product: %v", err)
	}
	dup, _ := catalog.NewProduct(catalog.Draft{SKU: "lamp-1", Name: "Other", Category: "home",
		Price: catalog.Money{Amount: 5}}, time.Now())
	if _, err := s.Create(ctx, dup); !fault.Is(err, fault.Conflict, "sku_taken") {
		t.Errorf("duplicate: %v", err)
	}
}

// A catalog database that cannot be reached is a 503 the client may retry, as
// with every other service's store (api/openapi.yaml: Unavailable), never a
// 500.
func TestADatabaseDownIsUnavailable(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, catalogdb.Migrations())
	s := catalogdb.New(pool)
	p := create(t, s, "LAMP-1")
	pool.Close()
	sale := []catalog.SoldDelta{{ProductID: p.ID, Delta: 1}}
	calls := map[string]func() error{
		"Create": func() error {
			q, _ := catalog.NewProduct(catalog.Draft{SKU: "LAMP-2", Name: "Lamp", Category: "home", Price: catalog.Money{Amount: 100}}, time.Now())
			_, err := s.Create(ctx, q)
			return err
		},
		"Get":      func() error { _, err := s.Get(ctx, p.ID); return err },
		"GetBySKU": func() error { _, err := s.GetBySKU(ctx, p.SKU); return err },
		"Current":  func() error { _, err := s.Current(ctx, p.ID); return err },
		"List":     func() error { _, _, err := s.List(ctx, "", uuid.Nil, 10); return err },
		"Update": func() error {
			_, err := s.Update(ctx, p.ID, func(p catalog.Product, _ time.Time) (catalog.Product, error) { return p, nil })
			return err
		},
		"SetAvailability": func() error { _, err := s.SetAvailability(ctx, p.ID, true); return err },
		"AddSold": func() error {
			_, _, err := s.AddSold(ctx, uuid.New(), "test", uuid.New(), false, sale)
			return err
		},
		"SetAvailabilityOnce": func() error {
			_, _, _, err := s.SetAvailabilityOnce(ctx, uuid.New(), "test", p.ID, true, 2)
			return err
		},
	}
	for name, call := range calls {
		err := call()
		if fault.KindOf(err) != fault.Unavailable {
			t.Errorf("%s with the database down: %v (kind %v), want fault.Unavailable", name, err, fault.KindOf(err))
		}
	}
}

// GetBySKU reads a SKU as a write stores it: trimmed, its ASCII letters
// upper-cased, and nothing else. Until 2026-12-06 it upper-cased with
// strings.ToUpper, so "ſku-1" (a SKU the writes refuse since abeb0a2) found
// SKU-1.
func TestGetBySKUReadsTheSKUAsAWriteStoresIt(t *testing.T) {
	s := catalogdb.New(pgtest.Open(t, catalogdb.Migrations()))
	ctx := context.Background()
	p := create(t, s, "sku-1")
	if got, err := s.GetBySKU(ctx, " Sku-1 "); err != nil || got.ID != p.ID {
		t.Errorf("GetBySKU(\" Sku-1 \") = %v, %v; want %s", got.ID, err, p.ID)
	}
	if got, err := s.GetBySKU(ctx, "ſku-1"); !fault.Is(err, fault.NotFound, "") {
		t.Errorf("GetBySKU(\"ſku-1\") = %v, %v; want not found", got.ID, err)
	}
}

// A page of the catalog, in a category or not, reads its own products (and
// the one that says more follow) from the cursor on, however many newer
// products there are and whatever plan PostgreSQL keeps for the statement:
// the generic plan it may cache on a session after five runs included. Until
// 2026-12-07 one statement served every page, and its conditions
// ($1 = empty OR category = $1, $2 = the nil UUID OR id < $2) cannot start a
// generic plan's index scan at the category or the cursor: it walked the
// whole catalog from the newest product and filtered, so a page deep in the
// list read every newer product first (2,047 of 3,000 for a page three
// quarters down; 58 for a first page of a category of a third of them).
func TestAListPageReadsItsOwnRowsOnly(t *testing.T) {
	pool := pgtest.Open(t, catalogdb.Migrations())
	ctx := context.Background()
	const catalogSize = 3000 // a third of it lamps, a tenth archived
	if _, err := pool.Exec(ctx, `INSERT INTO products (id, sku, name, category, price_amount, price_currency, archived)
		SELECT gen_random_uuid(), 'SKU-' || n, 'Product ' || n, CASE WHEN n % 3 = 0 THEN 'lamps' ELSE 'chairs' END,
		       100, 'USD', n % 10 = 5
		FROM generate_series(1, $1::int) n`, catalogSize); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE products`); err != nil {
		t.Fatal(err)
	}
	// The live products of a category ("" for all), newest (highest id) first.
	live := func(category string) []uuid.UUID {
		t.Helper()
		rows, err := pool.Query(ctx, `SELECT id, category, archived FROM products`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var ids []uuid.UUID
		for rows.Next() {
			var id uuid.UUID
			var c string
			var archived bool
			if err := rows.Scan(&id, &c, &archived); err != nil {
				t.Fatal(err)
			}
			if !archived && (category == "" || c == category) {
				ids = append(ids, id)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(b[:], a[:]) })
		return ids
	}
	const limit = 20
	for _, mode := range pgtest.PlanModes {
		for _, category := range []string{"", "lamps"} {
			want := live(category)
			deep := len(want) * 3 / 4 // the cursor: three quarters down the list
			for _, from := range []int{-1, deep} {
				after := uuid.Nil
				if from >= 0 {
					after = want[from]
				}
				t.Run(fmt.Sprintf("%s/category=%q/cursor=%v", mode, category, from >= 0), func(t *testing.T) {
					var page []catalog.Product
					var more bool
					read := pgtest.RowsReadUnder(t, pool, mode, "products", func(tx pgx.Tx) {
						var err error
						if page, more, err = catalogdb.ListIn(ctx, tx, category, after, limit); err != nil {
							t.Fatal(err)
						}
					})
					t.Logf("a page of %d of %d live products read %d products", len(page), len(want), read)
					got := make([]uuid.UUID, len(page))
					for i, p := range page {
						got[i] = p.ID
					}
					if w := want[from+1 : from+1+limit]; !slices.Equal(got, w) || !more {
						t.Fatalf("page %v, more %v; want %v, more true", got, more, w)
					}
					if read > 2*limit {
						t.Errorf("a page of %d products read %d products; want the page's and the next one's (at most %d)", limit, read, 2*limit)
					}
				})
			}
		}
	}
}

// A product whose COMMIT went through but whose answer was lost (the
// connection broke after the server committed) is in doubt: Create settles it
// and reads the product by its id, and answers it as a clean commit does, not
// a 503 whose retry the product, now there, answers 409 sku_taken. One whose
// COMMIT never reached the server is the 503 and leaves the SKU free for the
// retry.
func TestCreateSettlesACommitInDoubt(t *testing.T) {
	ctx := context.Background()
	for _, committed := range []bool{true, false} {
		t.Run(map[bool]string{true: "committed", false: "not committed"}[committed], func(t *testing.T) {
			pool, faults := pgtest.WithFaults(t, pgtest.Open(t, catalogdb.Migrations()))
			s := catalogdb.New(pool)
			p, err := catalog.NewProduct(catalog.Draft{SKU: "lamp-9", Name: "Lamp", Category: "home",
				Price: catalog.Money{Amount: 100}}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			faults.Arm(pgtest.Fault{Marker: "commit", Committed: committed})
			got, err := s.Create(ctx, p)
			if faults.Fired() != 1 {
				t.Fatalf("the connection did not break at the COMMIT (err %v): the test proves nothing", err)
			}
			if !committed {
				if fault.KindOf(err) != fault.Unavailable {
					t.Fatalf("a product whose COMMIT never reached the server: %+v, %v; want unavailable", got, err)
				}
				if _, err := s.Create(ctx, p); err != nil {
					t.Fatalf("the retry of a product that did not commit: %v, want it created", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("a product that committed, its answer lost: %v; want the product it created", err)
			}
			read, err := s.Get(ctx, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(got)
			r, _ := json.Marshal(read)
			if got.ID != p.ID || got.SKU != "LAMP-9" || got.Version != 1 || string(a) != string(r) {
				t.Fatalf("answer %s, read %s: want the product created", a, r)
			}
			if n, err := s.CountEvents(ctx, p.ID); err != nil || n != 1 {
				t.Fatalf("%d events (%v), want the creation's one", n, err)
			}
		})
	}
}

// rename is an update (Store.Update's change) of a product's name to name.
func rename(name string) func(catalog.Product, time.Time) (catalog.Product, error) {
	return func(p catalog.Product, now time.Time) (catalog.Product, error) {
		return catalog.Apply(p, catalog.Patch{Name: catalog.Optional[string]{Set: true, Value: name}}, now)
	}
}

// An update whose COMMIT went through but whose answer was lost is in doubt:
// Update settles it and reads the product, and when the product is the one
// this update produced (its version and its updated_at), answers it as a
// clean commit does, not a 503 whose retry with the same If-Match the new
// version answers 412. One whose COMMIT never reached the server is the 503,
// the product unchanged, and so is one whose product another update brought
// to the same version meanwhile: that version is not this update's.
func TestUpdateSettlesACommitInDoubt(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		committed bool
		other     bool // another update runs once the connection broke
	}{
		{"committed", true, false},
		{"not committed", false, false},
		{"not committed, another update to the same version", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			admin := pgtest.Open(t, catalogdb.Migrations())
			pool, faults := pgtest.WithFaults(t, admin)
			s := catalogdb.New(pool)
			p := create(t, s, "LAMP-1")
			ft := pgtest.Fault{Marker: "commit", Committed: tc.committed}
			if tc.other {
				ft.Then = func() {
					if _, err := catalogdb.New(admin).Update(ctx, p.ID, rename("Other lamp")); err != nil {
						t.Errorf("the other update: %v", err)
					}
				}
			}
			faults.Arm(ft)
			got, err := s.Update(ctx, p.ID, rename("Lamp two"))
			if faults.Fired() != 1 {
				t.Fatalf("the connection did not break at the COMMIT (err %v): the test proves nothing", err)
			}
			read, rerr := s.Get(ctx, p.ID)
			if rerr != nil {
				t.Fatal(rerr)
			}
			events, _ := s.CountEvents(ctx, p.ID)
			if !tc.committed {
				if fault.KindOf(err) != fault.Unavailable {
					t.Fatalf("an update whose COMMIT never reached the server: %+v, %v; want unavailable (the product is %+v)", got, err, read)
				}
				if want := map[bool]string{false: "Lamp LAMP-1", true: "Other lamp"}[tc.other]; read.Name != want {
					t.Fatalf("product name %q, want %q", read.Name, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("an update that committed, its answer lost: %v; want the product it produced", err)
			}
			a, _ := json.Marshal(got)
			r, _ := json.Marshal(read)
			if got.Version != 2 || got.Name != "Lamp two" || string(a) != string(r) {
				t.Fatalf("answer %s, read %s: want the product updated", a, r)
			}
			if events != 2 {
				t.Fatalf("%d events, want the creation's and the update's", events)
			}
		})
	}
}

// A write whose COMMIT went out and whose outcome stays unknown (the
// database cannot be reached to settle it, or the product was written again
// since) is a 503 whose detail says the write may have been made, so the
// client reads the product before repeating it: a create repeated after it
// committed is 409 sku_taken, an update on the same If-Match 412, an archive
// 404, each of which would otherwise read as a refusal of the client's own
// write. A write known not to have committed is the plain 503: repeating it
// is safe.
func TestAWriteWhoseOutcomeIsUnknownSaysSo(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		update    bool
		committed bool
		down      bool // the database unreachable from the break on
		other     bool // another update lands once the connection broke
		unknown   bool
	}{
		{"create, committed, database gone", false, true, true, false, true},
		{"create, not committed, database gone", false, false, true, false, true},
		{"create, not committed", false, false, false, false, false},
		{"update, committed, database gone", true, true, true, false, true},
		{"update, committed, written again since", true, true, false, true, true},
		{"update, not committed, another update to the same version", true, false, false, true, false},
		{"update, not committed", true, false, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			admin := pgtest.Open(t, catalogdb.Migrations())
			pool, faults := pgtest.WithFaults(t, admin)
			s := catalogdb.New(pool)
			ft := pgtest.Fault{Marker: "commit", Committed: tc.committed, Down: tc.down}
			var err error
			if tc.update {
				p := create(t, s, "LAMP-1")
				if tc.other {
					ft.Then = func() {
						if _, err := catalogdb.New(admin).Update(ctx, p.ID, rename("Other lamp")); err != nil {
							t.Errorf("the other update: %v", err)
						}
					}
				}
				faults.Arm(ft)
				_, err = s.Update(ctx, p.ID, rename("Lamp two"))
			} else {
				p, perr := catalog.NewProduct(catalog.Draft{SKU: "lamp-9", Name: "Lamp", Category: "home",
					Price: catalog.Money{Amount: 100}}, time.Now())
				if perr != nil {
					t.Fatal(perr)
				}
				faults.Arm(ft)
				_, err = s.Create(ctx, p)
			}
			faults.SetDown(false)
			if faults.Fired() != 1 {
				t.Fatalf("the connection did not break at the COMMIT (err %v): the test proves nothing", err)
			}
			var fe *fault.Error
			if !errors.As(err, &fe) || fe.Kind != fault.Unavailable {
				t.Fatalf("%v; want unavailable", err)
			}
			if says := strings.Contains(fe.Message, "may have been"); says != tc.unknown {
				t.Errorf("detail %q: says the write may have been made: %v, want %v", fe.Message, says, tc.unknown)
			}
		})
	}
}
