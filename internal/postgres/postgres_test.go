package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

func connect(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := postgres.Open(context.Background(), postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func applied(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, _ := pool.Query(context.Background(), `SELECT name FROM schema_migrations ORDER BY version`)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

var migrations = fstest.MapFS{
	// 0010 relies on 0002, so applying out of order fails.
	"0010_add_col.sql":  {Data: []byte(`ALTER TABLE things ADD COLUMN colour text; INSERT INTO log VALUES ('10');`)},
	"0002_things.sql":   {Data: []byte(`CREATE TABLE things (id int PRIMARY KEY); INSERT INTO log VALUES ('2');`)},
	"0001_log.sql":      {Data: []byte(`CREATE TABLE log (step text);`)},
	"README.md":         {Data: []byte(`not a migration`)},
	"sub/0003_more.sql": {Data: []byte(`INSERT INTO log VALUES ('3');`)},
}

func TestMigrateInOrderAndIdempotent(t *testing.T) {
	pool := connect(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	for i := range 2 {
		if err := postgres.Migrate(ctx, pool, migrations); err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
	}
	if diff := cmp.Diff([]string{"0001_log.sql", "0002_things.sql", "0003_more.sql", "0010_add_col.sql"}, applied(t, pool)); diff != "" {
		t.Errorf("schema_migrations (-want +got):\n%s", diff)
	}
	rows, _ := pool.Query(ctx, `SELECT step FROM log`)
	steps, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"2", "3", "10"}, steps); diff != "" {
		t.Errorf("each migration must run exactly once, in order (-want +got):\n%s", diff)
	}
}

// migrateConcurrently runs Migrate of fsys on url from four pools at once, as
// four replicas that start together do.
func migrateConcurrently(url string, fsys fstest.MapFS) error {
	ctx := context.Background()
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			pool, err := pgxpool.New(ctx, url)
			if err != nil {
				errs[i] = err
				return
			}
			defer pool.Close()
			errs[i] = postgres.Migrate(ctx, pool, fsys)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func TestMigrateConcurrently(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	if err := migrateConcurrently(url, migrations); err != nil {
		t.Fatalf("concurrent Migrate: %v", err)
	}
	pool := connect(t, url)
	var count int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM log`).Scan(&count); err != nil || count != 3 {
		t.Errorf("log rows = %d (%v), want 3: a migration ran twice", count, err)
	}
}

func TestFailingMigrationRollsBack(t *testing.T) {
	pool := connect(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	bad := fstest.MapFS{
		"0001_log.sql":  {Data: []byte(`CREATE TABLE log (step text);`)},
		"0002_half.sql": {Data: []byte(`CREATE TABLE half (id int); INSERT INTO nowhere VALUES (1);`)},
		"0003_next.sql": {Data: []byte(`INSERT INTO log VALUES ('3');`)},
	}
	err := postgres.Migrate(ctx, pool, bad)
	if err == nil || !strings.Contains(err.Error(), "0002_half.sql") {
		t.Fatalf("Migrate = %v, want an error naming 0002_half.sql", err)
	}
	if diff := cmp.Diff([]string{"0001_log.sql"}, applied(t, pool)); diff != "" {
		t.Errorf("schema_migrations (-want +got):\n%s", diff)
	}
	var half *string
	if err := pool.QueryRow(ctx, `SELECT to_regclass('half')::text`).Scan(&half); err != nil || half != nil {
		t.Errorf("table of the failed migration exists (%v, %v): not rolled back", half, err)
	}
	// Fixed, the same migration applies and the rest follow.
	bad["0002_half.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE half (id int);`)}
	if err := postgres.Migrate(ctx, pool, bad); err != nil {
		t.Fatal(err)
	}
	if got := len(applied(t, pool)); got != 3 {
		t.Errorf("%d migrations applied after the fix, want 3", got)
	}
}

// indexValid reports whether the index exists, and whether it is valid.
func indexValid(t *testing.T, pool *pgxpool.Pool, name string) (exists, valid bool) {
	t.Helper()
	err := pool.QueryRow(context.Background(), `SELECT i.indisvalid FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1`, name).Scan(&valid)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true, valid
}

// A NoTransaction migration builds its index while the table takes writes: a
// writer that started before it holds the build back, but the writers after it
// are not queued behind the build, as they are behind a CREATE INDEX in a
// migration's transaction (its SHARE lock).
func TestNoTransactionMigrationLetsWritersThrough(t *testing.T) {
	pool := connect(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	fsys := fstest.MapFS{"0001_t.sql": {Data: []byte(`CREATE TABLE t (k int);`)}}
	if err := postgres.Migrate(ctx, pool, fsys); err != nil {
		t.Fatal(err)
	}
	older, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer older.Rollback(ctx) //nolint:errcheck
	if _, err := older.Exec(ctx, `INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}

	fsys["0002_t_k.sql"] = &fstest.MapFile{Data: []byte(postgres.NoTransaction + "\n" +
		"CREATE INDEX CONCURRENTLY IF NOT EXISTS t_k ON t (k);")}
	migrated := make(chan error, 1)
	go func() { migrated <- postgres.Migrate(ctx, pool, fsys) }()
	// The build waits for the older writer.
	for waiting := false; !waiting; {
		select {
		case err := <-migrated:
			t.Fatalf("Migrate returned (%v) while a writer older than the build was open", err)
		default:
		}
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
			AND pid <> pg_backend_pid() AND query LIKE '%INDEX%t_k%' AND wait_event_type = 'Lock')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}

	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '3s'`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO t VALUES (2)`)
		return err
	})
	if err != nil {
		t.Errorf("a write during the index build: %v; want it through at once", err)
	}

	if err := older.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-migrated; err != nil {
		t.Fatal(err)
	}
	if exists, valid := indexValid(t, pool, "t_k"); !exists || !valid {
		t.Errorf("index t_k exists %v, valid %v; want a valid index", exists, valid)
	}
	if diff := cmp.Diff([]string{"0001_t.sql", "0002_t_k.sql"}, applied(t, pool)); diff != "" {
		t.Errorf("schema_migrations (-want +got):\n%s", diff)
	}
}

// Replicas that start together migrate one at a time: the ones waiting for
// the migration lock must not hold back the concurrent build of the one
// migrating (a build waits for every older snapshot in its database, and a
// session blocked in pg_advisory_lock keeps one: a deadlock).
func TestNoTransactionMigrationConcurrently(t *testing.T) {
	url := pgtest.NewDatabase(t)
	fsys := fstest.MapFS{
		"0001_v.sql":   {Data: []byte(`CREATE TABLE v (k int); INSERT INTO v SELECT generate_series(1, 100000);`)},
		"0002_v_k.sql": {Data: []byte(postgres.NoTransaction + "\n" + "CREATE INDEX CONCURRENTLY IF NOT EXISTS v_k ON v (k);")},
	}
	if err := migrateConcurrently(url, fsys); err != nil {
		t.Fatalf("concurrent Migrate: %v", err)
	}
	pool := connect(t, url)
	if exists, valid := indexValid(t, pool, "v_k"); !exists || !valid {
		t.Errorf("index v_k exists %v, valid %v; want a valid index", exists, valid)
	}
}

// A concurrent build that fails leaves an invalid index, which IF NOT EXISTS
// takes for built: the next Migrate drops it and builds it again.
func TestNoTransactionMigrationRebuildsAnIndexLeftInvalid(t *testing.T) {
	pool := connect(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	fsys := fstest.MapFS{
		"0001_u.sql": {Data: []byte(`CREATE TABLE u (id int, k int); INSERT INTO u VALUES (1, 1), (2, 1);`)},
		"0002_u_k.sql": {Data: []byte(postgres.NoTransaction + "\n" +
			"-- one key per row\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS u_k ON u (k);")},
	}
	err := postgres.Migrate(ctx, pool, fsys)
	if err == nil || !strings.Contains(err.Error(), "0002_u_k.sql") {
		t.Fatalf("Migrate = %v, want an error naming 0002_u_k.sql (a duplicate key)", err)
	}
	if diff := cmp.Diff([]string{"0001_u.sql"}, applied(t, pool)); diff != "" {
		t.Errorf("schema_migrations after the failed build (-want +got):\n%s", diff)
	}
	if exists, valid := indexValid(t, pool, "u_k"); !exists || valid {
		t.Fatalf("index u_k exists %v, valid %v after the failed build; the test needs it left invalid", exists, valid)
	}
	// Another invalid index, whose name the file holds only inside a word
	// ("key"), is not the migration's: it stays.
	if _, err := pool.Exec(ctx, `CREATE UNIQUE INDEX CONCURRENTLY ey ON u (k)`); err == nil {
		t.Fatal("the unique build of ey succeeded on a duplicate key")
	}

	if _, err := pool.Exec(ctx, `DELETE FROM u WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	if err := postgres.Migrate(ctx, pool, fsys); err != nil {
		t.Fatal(err)
	}
	if exists, valid := indexValid(t, pool, "u_k"); !exists || !valid {
		t.Errorf("index u_k exists %v, valid %v; want it built again, valid", exists, valid)
	}
	if exists, valid := indexValid(t, pool, "ey"); !exists || valid {
		t.Errorf("index ey exists %v, valid %v; want it left as it was, invalid", exists, valid)
	}
	if diff := cmp.Diff([]string{"0001_u.sql", "0002_u_k.sql"}, applied(t, pool)); diff != "" {
		t.Errorf("schema_migrations (-want +got):\n%s", diff)
	}
}

// waitingForALock waits until a session of pool's database waits for a lock
// in a statement holding marker, failing the test if migrated (the
// migration's outcome) comes first.
func waitingForALock(t *testing.T, pool *pgxpool.Pool, marker string, migrated <-chan error) {
	t.Helper()
	for waiting := false; !waiting; time.Sleep(5 * time.Millisecond) {
		select {
		case err := <-migrated:
			t.Fatalf("Migrate returned (%v) before it waited for its lock", err)
		default:
		}
		if err := pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'
			AND strpos(query, $1) > 0)`, marker).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
}

// A migration that alters a table waits for its lock behind a long
// transaction that read the table, and while it waits every reader and writer
// of the table queues behind it. With a lock timeout it steps out of the
// queue and tries again later: they wait the timeout at most. It succeeds
// once the long transaction ends within its tries, and when the transaction
// never does it fails, naming itself and the session that holds the lock,
// and is not recorded.
func TestMigrationWaitingForALockHoldsUpReadersAndWritersOnlyItsLockTimeout(t *testing.T) {
	const lockTimeout = 300 * time.Millisecond
	// Tries of 300 ms, then waits of 50, 100, 200, 400 and 800 ms: the last
	// try starts 3 s after the first.
	postgres.SetMigrationRetry(t, 6, 50*time.Millisecond)
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	fsys := fstest.MapFS{"0001_r.sql": {Data: []byte(`CREATE TABLE r (k int);`)}}
	// logged holds the tries' log lines; it is read once migrate returned.
	var logged bytes.Buffer
	migrate := func(ctx context.Context) error {
		pool, err := postgres.Open(ctx, postgres.Config{URL: url, Migrations: fsys, MigrationLockTimeout: lockTimeout,
			Log: slog.New(slog.NewTextHandler(&logged, nil))})
		if err == nil {
			pool.Close()
		}
		return err
	}
	if err := migrate(ctx); err != nil {
		t.Fatal(err)
	}
	pool := connect(t, url)
	// holder opens a transaction that has read r (ACCESS SHARE): a report,
	// a slow export.
	holder := func() pgx.Tx {
		t.Helper()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback(ctx) })
		if _, err := tx.Exec(ctx, `SELECT count(*) FROM r`); err != nil {
			t.Fatal(err)
		}
		return tx
	}

	long := holder()
	holderPID := fmt.Sprintf("pid %d ", long.Conn().PgConn().PID())
	fsys["0002_r_k_positive.sql"] = &fstest.MapFile{Data: []byte(
		`ALTER TABLE r ADD CONSTRAINT r_k_positive CHECK (k > 0) NOT VALID;`)}
	migrated := make(chan error, 1)
	mctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	go func() { migrated <- migrate(mctx) }()
	waitingForALock(t, pool, "r_k_positive", migrated)
	for start := time.Now(); time.Since(start) < time.Second; {
		for _, sql := range []string{`INSERT INTO r VALUES (1)`, `SELECT count(*) FROM r`} {
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			began := time.Now()
			_, err := pool.Exec(qctx, sql)
			took := time.Since(began)
			cancel()
			if err != nil || took > lockTimeout+500*time.Millisecond {
				t.Fatalf("%s while the migration waits for its lock: %v after %s; want it through within "+
					"the lock timeout (%s)", sql, err, took.Round(time.Millisecond), lockTimeout)
			}
		}
	}
	if err := long.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-migrated; err != nil {
		t.Fatalf("Migrate = %v once the long transaction ended within its tries; want it applied", err)
	}
	// Each try that gave up was logged, naming the file and the session that
	// held the lock: the function is not serving meanwhile.
	if tries := strings.Count(logged.String(), "migration=0002_r_k_positive.sql try="); tries == 0 ||
		!strings.Contains(logged.String(), holderPID) {
		t.Errorf("log of the migration's tries:\n%s\nwant a line per try that names 0002_r_k_positive.sql and %q", logged.String(), holderPID)
	}
	logged.Reset()
	var added bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'r_k_positive')`).Scan(&added); err != nil || !added {
		t.Errorf("constraint r_k_positive added %v (%v), want it added", added, err)
	}

	// A holder that never lets go: the migration gives up.
	postgres.SetMigrationRetry(t, 3, 50*time.Millisecond)
	never := holder()
	fsys["0003_r_k_not_null.sql"] = &fstest.MapFile{Data: []byte(`ALTER TABLE r ALTER COLUMN k SET NOT NULL;`)}
	mctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := migrate(mctx)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "55P03" {
		t.Fatalf("Migrate = %v, want lock_not_available (55P03)", err)
	}
	for _, want := range []string{"0003_r_k_not_null.sql", fmt.Sprintf("pid %d ", never.Conn().PgConn().PID()), "3 tries"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Migrate = %v; want it to say %q", err, want)
		}
	}
	if tries := strings.Count(logged.String(), "migration=0003_r_k_not_null.sql try="); tries != 2 {
		t.Errorf("log of the migration's tries:\n%s\nwant 2 lines (the tries before the last, whose error says it all)", logged.String())
	}
	if diff := cmp.Diff([]string{"0001_r.sql", "0002_r_k_positive.sql"}, applied(t, pool)); diff != "" {
		t.Errorf("schema_migrations (-want +got):\n%s", diff)
	}
	var notNull bool
	if err := pool.QueryRow(ctx, `SELECT attnotnull FROM pg_attribute WHERE attrelid = 'r'::regclass AND attname = 'k'`).Scan(&notNull); err != nil || notNull {
		t.Errorf("r.k not null %v (%v) after the migration failed; want it rolled back", notNull, err)
	}
}

// A function opens its database under a deadline (OpenTimeout): the
// migration's last try ends with its own lock timeout before the deadline
// does, so the error still names the session that holds the lock, rather
// than being a bare context error.
func TestMigrationThatNeverGetsItsLockFailsClearlyBeforeItsDeadline(t *testing.T) {
	pool := connect(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	fsys := fstest.MapFS{"0001_s.sql": {Data: []byte(`CREATE TABLE s (k int);`)}}
	if err := postgres.Migrate(ctx, pool, fsys); err != nil {
		t.Fatal(err)
	}
	never, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer never.Rollback(ctx) //nolint:errcheck
	// A writer (ROW EXCLUSIVE), which the index build's SHARE lock waits for.
	if _, err := never.Exec(ctx, `INSERT INTO s VALUES (1)`); err != nil {
		t.Fatal(err)
	}

	fsys["0002_s_k_index.sql"] = &fstest.MapFile{Data: []byte(`CREATE INDEX s_k ON s (k);`)}
	deadline := time.Now().Add(postgres.DefaultMigrationLockTimeout - 500*time.Millisecond) // less than the default lock timeout
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	err = postgres.Migrate(dctx, pool, fsys)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "55P03" || errors.Is(err, context.DeadlineExceeded) || time.Now().After(deadline) {
		t.Fatalf("Migrate = %v; want lock_not_available (55P03) before the deadline", err)
	}
	for _, want := range []string{"0002_s_k_index.sql", fmt.Sprintf("pid %d ", never.Conn().PgConn().PID())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Migrate = %v; want it to say %q", err, want)
		}
	}
	if diff := cmp.Diff([]string{"0001_s.sql"}, applied(t, pool)); diff != "" {
		t.Errorf("schema_migrations (-want +got):\n%s", diff)
	}
}

func TestMigrateRejectsBadNames(t *testing.T) {
	pool := connect(t, pgtest.NewDatabase(t))
	for name, fsys := range map[string]fstest.MapFS{
		"no number":      {"init.sql": {Data: []byte(`SELECT 1`)}},
		"shared version": {"0001_a.sql": {Data: []byte(`SELECT 1`)}, "0001_b.sql": {Data: []byte(`SELECT 1`)}},
	} {
		if err := postgres.Migrate(context.Background(), pool, fsys); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestTx(t *testing.T) {
	pool := connect(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE t (v int)`); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO t VALUES (1)`); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("Tx = %v, want fn's error", err)
	}
	if err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO t VALUES (2)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// A cancelled request context still commits what fn finished.
	cctx, cancel := context.WithCancel(ctx)
	if err := postgres.Tx(cctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(cctx, `INSERT INTO t VALUES (3)`)
		cancel()
		return err
	}); err != nil {
		t.Errorf("Tx after cancellation: %v", err)
	}
	rows, _ := pool.Query(ctx, `SELECT v FROM t ORDER BY v`)
	got, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int32{2, 3}, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if _, err := pool.Exec(ctx, `CREATE UNIQUE INDEX t_v ON t (v)`); err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, `INSERT INTO t VALUES (2)`)
	if !postgres.IsUniqueViolation(err, "t_v") || !postgres.IsUniqueViolation(err, "") || postgres.IsUniqueViolation(err, "other") {
		t.Errorf("IsUniqueViolation misclassifies %v", err)
	}
}

func TestOpenCreatesDatabase(t *testing.T) {
	url, _ := pgtest.MissingDatabase(t)
	// The pool is lazy: without CreateDatabase the first use fails.
	if pool, err := postgres.Open(context.Background(), postgres.Config{URL: url}); err == nil {
		if pool.Ping(context.Background()) == nil {
			t.Fatal("the database exists before Open with CreateDatabase")
		}
		pool.Close()
	}
	for i := range 2 { // the second Open finds it existing
		pool, err := postgres.Open(context.Background(), postgres.Config{URL: url, CreateDatabase: true, Migrations: migrations})
		if err != nil {
			t.Fatalf("Open #%d: %v", i+1, err)
		}
		if got := len(applied(t, pool)); got != 4 {
			t.Errorf("Open #%d: %d migrations applied, want 4", i+1, got)
		}
		pool.Close()
	}
}

// Every pool Open returns scans timestamptz in UTC, not in the process's
// local zone (pgx's default, which made a developer machine outside UTC
// answer its times with an offset, and read back times unequal to the UTC
// times written).
func TestTimesAreScannedInUTC(t *testing.T) {
	pool := connect(t, pgtest.NewDatabase(t))
	var at time.Time
	if err := pool.QueryRow(context.Background(), `SELECT '2026-12-05 10:00:00+03'::timestamptz`).Scan(&at); err != nil {
		t.Fatal(err)
	}
	if at.Location() != time.UTC || !at.Equal(time.Date(2026, 12, 5, 7, 0, 0, 0, time.UTC)) {
		t.Errorf("scanned %v in %v, want 2026-12-05 07:00:00 in UTC", at, at.Location())
	}
	var ats []time.Time
	if err := pool.QueryRow(context.Background(), `SELECT ARRAY['2026-12-05 10:00:00+03'::timestamptz]`).Scan(&ats); err != nil {
		t.Fatal(err)
	}
	if len(ats) != 1 || ats[0].Location() != time.UTC {
		t.Errorf("scanned the array %v, want its time in UTC", ats)
	}
}

// A migration that takes longer than the deadline Open runs under (a
// function's build, OpenTimeout) is not cut by it: it goes on in the
// background while Open fails, and a later Open finds it applied and
// recorded. Cut at each deadline, a concurrent build would leave an invalid
// index that the next Open drops and builds again from the start, for ever,
// and a migration in a transaction would roll back each time.
func TestMigrationLongerThanOpensDeadlineIsAppliedInTheEnd(t *testing.T) {
	url := pgtest.NewDatabase(t)
	fsys := fstest.MapFS{
		// slow takes 10 ms a row, so a build over w's 100 rows takes 1 s a pass.
		"0001_w.sql": {Data: []byte(`CREATE TABLE w (k int);
			INSERT INTO w SELECT generate_series(1, 100);
			CREATE FUNCTION slow(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.01); RETURN $1; END $$;`)},
		"0002_w_slow.sql": {Data: []byte(postgres.NoTransaction + "\n" +
			"CREATE INDEX CONCURRENTLY IF NOT EXISTS w_slow ON w (slow(k));")},
		"0003_after.sql": {Data: []byte(`SELECT pg_sleep(1.5); CREATE TABLE after_sleep (k int);`)},
	}
	const deadline = 300 * time.Millisecond
	start := time.Now()
	var firstErr error
	for tries := 1; ; tries++ {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		began := time.Now()
		pool, err := postgres.Open(ctx, postgres.Config{URL: url, Migrations: fsys})
		took := time.Since(began)
		cancel()
		if err == nil {
			pool.Close()
			t.Logf("Open succeeded at try %d, %s after the first", tries, time.Since(start).Round(time.Millisecond))
			break
		}
		if firstErr == nil {
			firstErr = err
		}
		if !errors.Is(err, postgres.ErrMigrating) {
			t.Fatalf("Open #%d = %v; want ErrMigrating while the migrations go on", tries, err)
		}
		if took > deadline+time.Second {
			t.Fatalf("Open #%d took %s, beyond its deadline %s", tries, took, deadline)
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("Open under a %s deadline still fails after %d tries in %s: %v (the first: %v)",
				deadline, tries, time.Since(start).Round(time.Second), err, firstErr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	pool := connect(t, url)
	if diff := cmp.Diff([]string{"0001_w.sql", "0002_w_slow.sql", "0003_after.sql"}, applied(t, pool)); diff != "" {
		t.Errorf("schema_migrations (-want +got):\n%s", diff)
	}
	if exists, valid := indexValid(t, pool, "w_slow"); !exists || !valid {
		t.Errorf("index w_slow exists %v, valid %v; want a valid index", exists, valid)
	}
}

// The run of migrations that Open's deadline no longer cuts is bounded by
// Config.MigrationTimeout (DATABASE_MIGRATION_TIMEOUT): past it the
// migration is cut, rolled back and not recorded.
func TestMigrationTimeoutBoundsTheMigrations(t *testing.T) {
	url := pgtest.NewDatabase(t)
	fsys := fstest.MapFS{
		"0001_x.sql": {Data: []byte(`CREATE TABLE x (k int);`)},
		"0002_y.sql": {Data: []byte(`CREATE TABLE y (k int); SELECT pg_sleep(5);`)},
	}
	began := time.Now()
	_, err := postgres.Open(context.Background(), postgres.Config{URL: url, Migrations: fsys, MigrationTimeout: 500 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "DATABASE_MIGRATION_TIMEOUT") ||
		!strings.Contains(err.Error(), "0002_y.sql") || time.Since(began) > 4*time.Second {
		t.Fatalf("Open = %v after %s; want the migration 0002_y.sql cut at DATABASE_MIGRATION_TIMEOUT (500ms)",
			err, time.Since(began).Round(time.Millisecond))
	}
	pool := connect(t, url)
	if diff := cmp.Diff([]string{"0001_x.sql"}, applied(t, pool)); diff != "" {
		t.Errorf("schema_migrations (-want +got):\n%s", diff)
	}
	var exists bool
	if err := pool.QueryRow(context.Background(), `SELECT to_regclass('y') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Errorf("table y exists %v (%v); want 0002_y.sql rolled back", exists, err)
	}
}

// holdMigrationLock takes the migration lock of url's database on a
// connection of its own, as another process would, closed when t ends.
func holdMigrationLock(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	other, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close(ctx) })
	if _, err := other.Exec(ctx, `SELECT pg_advisory_lock($1)`, postgres.MigrationLockKey); err != nil {
		t.Fatal(err)
	}
	return other
}

// Config.MigrationTimeout counts from when the run holds the migration
// lock: a run that waited for the lock held by another process for most of
// its timeout still has the whole timeout for its migrations, and the wait
// is bounded by a timeout of its own.
func TestMigrationTimeoutCountsOnceTheLockIsHeld(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	other := holdMigrationLock(t, url)
	const timeout = 1500 * time.Millisecond
	released := make(chan error, 1)
	go func() {
		time.Sleep(timeout * 3 / 5) // most of the timeout
		_, err := other.Exec(ctx, `SELECT pg_advisory_unlock($1)`, postgres.MigrationLockKey)
		released <- err
	}()
	fsys := fstest.MapFS{
		"0001_slow.sql": {Data: []byte(`SELECT pg_sleep(0.9); CREATE TABLE slow (k int);`)}, // most of it too
	}
	began := time.Now()
	pool, err := postgres.Open(ctx, postgres.Config{URL: url, Migrations: fsys, MigrationTimeout: timeout})
	if err := <-released; err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("Open = %v after %s; want the migration applied, its %s counted from the lock",
			err, time.Since(began).Round(time.Millisecond), timeout)
	}
	pool.Close()
	if diff := cmp.Diff([]string{"0001_slow.sql"}, applied(t, connect(t, url))); diff != "" {
		t.Errorf("schema_migrations (-want +got):\n%s", diff)
	}
}

// The wait for the migration lock another process holds is bounded by
// Config.MigrationTimeout on its own, and its failure says so.
func TestMigrationWaitForTheLockIsBounded(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	holdMigrationLock(t, url)
	fsys := fstest.MapFS{"0001_x.sql": {Data: []byte(`CREATE TABLE x (k int);`)}}
	began := time.Now()
	_, err := postgres.Open(ctx, postgres.Config{URL: url, Migrations: fsys, MigrationTimeout: 300 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waited for their lock") ||
		time.Since(began) > 3*time.Second {
		t.Fatalf("Open = %v after %s; want the wait for the lock cut at DATABASE_MIGRATION_TIMEOUT (300ms)",
			err, time.Since(began).Round(time.Millisecond))
	}
}
