package postgres_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// TestUUIDParametersAreEncodedDirectly: a uuid.UUID parameter costs at most
// 2 allocations to encode in binary (the format pgx sends uuid in) on a
// connection of Open, instead of 20 (pgx alone takes it as a driver.Valuer:
// string, failed encode, parse, encode again), and ids, also
// in arrays and as nullable pointers, still reach PostgreSQL and come back
// unchanged.
func TestUUIDParametersAreEncodedDirectly(t *testing.T) {
	m := pgtype.NewMap()
	postgres.RegisterUUID(m)
	id := uuid.New()
	buf := make([]byte, 0, 64)
	for _, format := range []int16{pgtype.BinaryFormatCode, pgtype.TextFormatCode} {
		got, err := m.Encode(pgtype.UUIDOID, format, id, buf[:0])
		if err != nil {
			t.Fatal(err)
		}
		want, _ := m.Encode(pgtype.UUIDOID, format, pgtype.UUID{Bytes: id, Valid: true}, nil)
		if string(got) != string(want) {
			t.Errorf("format %d: %q, want %q", format, got, want)
		}
		if allocs := testing.AllocsPerRun(100, func() { _, _ = m.Encode(pgtype.UUIDOID, format, id, buf[:0]) }); format == pgtype.BinaryFormatCode && allocs > 2 {
			t.Errorf("%.0f allocations to encode a uuid.UUID, want at most 2", allocs)
		}
	}

	ctx := context.Background()
	pool, err := postgres.Open(ctx, postgres.Config{URL: pgtest.NewDatabase(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	other := uuid.New()
	var back, text string
	var arr []uuid.UUID
	var null *uuid.UUID
	if err := pool.QueryRow(ctx, `SELECT $1::uuid, $1::uuid::text, $2::uuid[], $3::uuid`, id, []uuid.UUID{id, other}, (*uuid.UUID)(nil)).
		Scan(&back, &text, &arr, &null); err != nil {
		t.Fatal(err)
	}
	if back != id.String() || text != id.String() || len(arr) != 2 || arr[0] != id || arr[1] != other || null != nil {
		t.Errorf("round trip: %s %s %v %v, want %s, [%s %s], nil", back, text, arr, null, id, id, other)
	}
	var eq bool
	if err := pool.QueryRow(ctx, `SELECT $1 = $2::uuid`, &other, other.String()).Scan(&eq); err != nil || !eq {
		t.Errorf("pointer parameter: %v %v", eq, err)
	}
}
