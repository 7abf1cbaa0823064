// Package postgres owns the connection to PostgreSQL: small lazy pools, the
// database-per-service creation on demand, versioned migrations and the one
// transaction helper every store uses.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/config"
)

// Config describes one service database.
type Config struct {
	// URL is the service database's connection string, e.g.
	// postgres://shop@127.0.0.1:5432/shop_users. Required.
	URL string
	// Password, when set, overrides the URL's password (read from a secret file).
	Password string
	// MaxConns bounds the pool; every function replica owns one pool, and
	// PostgreSQL's default max_connections is 100. ConfigFrom and
	// ReaderConfigFrom set it from DATABASE_MAX_CONNS, default 3; a Config
	// built directly with 0 (tests, tools) gets 4. A pending migration runs
	// on one connection more, closed once it is done.
	MaxConns int32
	// Migrations holds the service's NNNN_name.sql files, applied in order.
	Migrations fs.FS
	// CreateDatabase creates the database when it does not exist yet (development
	// and tests). Production databases are created by the compose file.
	CreateDatabase bool
	// MigrationURL, when set, is the same database reached directly, where
	// URL goes through a pooler in transaction mode (PgBouncer): pending
	// migrations run over it (their lock lives in a server session, which
	// such a pooler does not keep), on one connection closed once they are
	// done. Password applies to it too.
	MigrationURL string
	// MigrationLockTimeout bounds how long a migration run in a transaction
	// waits for each lock it takes before it is rolled back and tried again
	// (see Migrate). Default DefaultMigrationLockTimeout.
	MigrationLockTimeout time.Duration
	// MigrationTimeout bounds a run of the pending migrations, which Open's
	// deadline does not cut (see Open), counted from when the run holds the
	// migration lock; the wait for the lock, which another process may
	// hold, is bounded by it too, on its own. Default DefaultMigrationTimeout.
	MigrationTimeout time.Duration
	// Log receives a line for each try of a migration that could not get
	// its locks and is tried again, and the outcome of a run of migrations
	// that no Open was waiting for when it ended (default slog.Default()).
	Log *slog.Logger
	// ReadOnly: the pool is a reader's, whose role may read the service's
	// tables and write nothing (ReaderConfigFrom): Open applies no
	// migration, and instead checks that schema_migrations records every
	// file of Migrations, failing with ErrNotMigrated until the service's
	// writers have applied them. CreateDatabase and MigrationURL are
	// ignored.
	ReadOnly bool
}

// Open connects to the service database, creating it when asked and applying
// pending migrations under an advisory lock, so many replicas may start at once.
//
// The migrations run on a connection of their own, in the background, under
// Config.MigrationTimeout and not under ctx: Open waits for them until ctx is
// done, and then fails with ErrMigrating while they go on (a function's
// build runs under OpenTimeout, 15 s, and an index built concurrently on a
// large table, or a backfill, takes longer: cut at each build's deadline,
// it would never be applied). An Open in the same process that finds them
// running waits for that run, not a second one, up to its own ctx; an Open
// in another process waits for the advisory lock up to its ctx.
//
// URL may go through a pooler in transaction mode (PgBouncer) if it says how
// queries are sent (default_query_exec_mode: exec where the pooler keeps no
// prepared statements, as PgBouncer before 1.21, whose clients otherwise
// fail at random with "prepared statement … does not exist"); Open refuses
// one that does not. Migrations then need MigrationURL, when any is pending.
func Open(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	pc, err := parsePoolConfig(cfg.URL, cfg.Password)
	if err != nil {
		return nil, err
	}
	pc.MaxConns = cfg.MaxConns
	if pc.MaxConns <= 0 {
		pc.MaxConns = 4
	}
	pc.MinConns = 0
	pc.MaxConnIdleTime = 30 * time.Second
	pc.MaxConnLifetime = 30 * time.Minute
	pc.HealthCheckPeriod = 15 * time.Second
	pc.ConnConfig.Tracer = newQueryTracer()
	pc.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		RegisterUUID(c.TypeMap())
		ScanTimesInUTC(c.TypeMap())
		return nil
	}
	direct := pc.Copy()
	if cfg.MigrationURL != "" {
		if direct, err = parsePoolConfig(cfg.MigrationURL, cfg.Password); err != nil {
			return nil, fmt.Errorf("migration url: %w", err)
		}
	}
	direct.MaxConns, direct.MinConns = 1, 0
	if cfg.CreateDatabase && !cfg.ReadOnly {
		if err := ensureDatabase(ctx, direct.ConnConfig); err != nil {
			return nil, err
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", pc.ConnConfig.Database, err)
	}
	if err := refuseUnsaidPooler(ctx, pool, cfg.URL); err != nil {
		pool.Close()
		return nil, err
	}
	switch {
	case cfg.Migrations == nil:
	case cfg.ReadOnly:
		if err := checkMigrated(ctx, pool, cfg.Migrations); err != nil {
			pool.Close()
			return nil, err
		}
	default:
		if err := migrateOver(ctx, pool, direct, cfg); err != nil {
			pool.Close()
			return nil, err
		}
	}
	return pool, nil
}

// ErrNotMigrated is Open's answer to a reader (Config.ReadOnly) whose
// database lacks a migration its binary knows: a release whose readers
// started before its writers migrated. The reader's build fails like any
// unready dependency's (its function answers 503 and builds again at its
// next request, fnhttp.Lazy) until a writer has migrated: a reader's role
// may not migrate, and its queries may need what the migration adds. The
// error says what to do, build a writer (its /_/ready), since on faasd
// nothing builds one until it is called (docs/deploy-faasd.md, step 7).
var ErrNotMigrated = errors.New("the database is not migrated as far as this function's release needs; " +
	"its service's writers apply the migrations, a reader never does")

// checkMigrated is ErrNotMigrated, naming the first file of migrations that
// schema_migrations does not record, or nil when it records every one. One
// round trip when the table exists, sent unprepared (through a pooler).
func checkMigrated(ctx context.Context, pool *pgxpool.Pool, migrations fs.FS) error {
	files, err := migrationFiles(migrations)
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("check the migrations: %w", err)
	}
	defer conn.Release()
	pending, err := firstPending(ctx, conn.Conn(), files)
	if err != nil {
		return fmt.Errorf("check the migrations of %s: %w", pool.Config().ConnConfig.Database, err)
	}
	if pending != "" {
		db := pool.Config().ConnConfig.Database
		return fmt.Errorf("%s: %s is not applied (a writer of %s has not migrated it yet: call its /_/ready): %w",
			db, path.Base(pending), db, ErrNotMigrated)
	}
	return nil
}

// parsePoolConfig parses a database URL, with password (a secret file's)
// in place of the URL's own when set.
func parsePoolConfig(url, password string) (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if password != "" {
		pc.ConnConfig.Password = password
	}
	return pc, nil
}

// ScanTimesInUTC makes m scan timestamptz values in UTC rather than in the
// process's local time zone (pgx's default): every service answers its
// times in UTC ("…Z") wherever it runs, a developer's machine included, and
// a time read back equals the UTC time written.
func ScanTimesInUTC(m *pgtype.Map) {
	// A timestamptz[] scans through it too: pgx's array codec finds its
	// element's codec in m when it plans a scan (the test reads one).
	m.RegisterType(&pgtype.Type{Name: "timestamptz", OID: pgtype.TimestamptzOID,
		Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC}})
}

// migrateOver applies cfg's pending migrations (runMigrations) over a pool
// of one connection of its own to direct, cfg.MigrationURL's when set, else
// the pool's own URL's: a replica that finds nothing pending, every one
// after the first of a release, opens no connection besides pool's. It waits
// for the run until ctx is done, then fails with ErrMigrating while the run
// goes on.
func migrateOver(ctx context.Context, pool *pgxpool.Pool, direct *pgxpool.Config, cfg Config) error {
	files, err := migrationFiles(cfg.Migrations)
	if err != nil {
		return err
	}
	db := pool.Config().ConnConfig.Database
	for {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		pending, err := firstPending(ctx, conn.Conn(), files)
		conn.Release()
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if pending == "" {
			return nil
		}
		run, started := runMigrations(ctx, direct, cfg)
		select {
		case <-run.done:
			run.leave()
			// A run another Open started applied its own files, which
			// may not be all of cfg's: look again.
			if run.err != nil || started {
				return run.err
			}
		case <-ctx.Done():
			run.leave()
			return fmt.Errorf("%s: %s and any after it are still being applied (%v): %w",
				db, path.Base(pending), ctx.Err(), ErrMigrating)
		}
	}
}

// DefaultMigrationTimeout bounds a run of a database's pending migrations
// by default (Config.MigrationTimeout, DATABASE_MIGRATION_TIMEOUT): a
// concurrent index build on a table of tens of millions of rows, or a
// backfill, with room to spare.
const DefaultMigrationTimeout = time.Hour

// ErrMigrating is Open's answer when its deadline came while the database's
// migrations were being applied: they go on in the background, within
// Config.MigrationTimeout, and the next Open waits for them again, or finds
// them applied. A function's build fails meanwhile, so it answers 503 and
// builds again at its next request or readiness check (fnhttp.Lazy).
var ErrMigrating = errors.New("the database's migrations are still being applied in the background " +
	"(within DATABASE_MIGRATION_TIMEOUT); the function answers 503 until they are")

// migrationRun is a run of a database's pending migrations in this process:
// it outlives the Open that started it, so that the deadline of a
// function's build does not cut a long migration.
type migrationRun struct {
	done chan struct{}
	err  error // the run's outcome, set before done is closed
	// waiters counts the Opens waiting for the run (guarded by runsMu):
	// when none is at its end, the run logs its outcome itself.
	waiters int
}

var (
	runsMu sync.Mutex
	// runs are the runs going on, by database (migrationKey).
	runs = map[string]*migrationRun{}
)

// migrationKey names direct's database among the runs of this process.
func migrationKey(direct *pgxpool.Config) string {
	cc := direct.ConnConfig
	return cc.Host + ":" + strconv.Itoa(int(cc.Port)) + "/" + cc.Database
}

// runMigrations returns the run of direct's database's pending migrations
// going on in this process, starting it when there is none (started), and
// counts the caller among its waiters (leave when done waiting). The run
// applies cfg.Migrations (migrate) over a pool of one connection to direct,
// on ctx's values without its cancellation, bounded by cfg.MigrationTimeout.
func runMigrations(ctx context.Context, direct *pgxpool.Config, cfg Config) (run *migrationRun, started bool) {
	key := migrationKey(direct)
	runsMu.Lock()
	defer runsMu.Unlock()
	if run := runs[key]; run != nil {
		run.waiters++
		return run, false
	}
	run = &migrationRun{done: make(chan struct{}), waiters: 1}
	runs[key] = run
	go run.apply(context.WithoutCancel(ctx), key, direct, cfg)
	return run, true
}

// leave counts a waiter out of run.
func (run *migrationRun) leave() {
	runsMu.Lock()
	run.waiters--
	runsMu.Unlock()
}

// apply is the run's work: see runMigrations.
func (run *migrationRun) apply(ctx context.Context, key string, direct *pgxpool.Config, cfg Config) {
	timeout := cfg.MigrationTimeout
	if timeout <= 0 {
		timeout = DefaultMigrationTimeout
	}
	lockTimeout := cfg.MigrationLockTimeout
	if lockTimeout <= 0 {
		lockTimeout = DefaultMigrationLockTimeout
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	began := time.Now()
	// The timeout counts twice, on its own each time: once for connecting
	// and waiting for the migration lock, which another process may hold
	// for long, and once for the migrations from when the lock is held,
	// so that a long wait leaves them their whole budget.
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var runCtx context.Context // the migrations', once the lock is held
	held := func() (context.Context, context.CancelFunc) {
		c, cancel := context.WithTimeout(ctx, timeout)
		runCtx = c
		return c, cancel
	}
	err := func() error {
		mp, err := pgxpool.NewWithConfig(waitCtx, direct)
		if err != nil {
			return fmt.Errorf("connect %s for its migrations: %w", direct.ConnConfig.Database, err)
		}
		defer mp.Close()
		return migrate(waitCtx, mp, cfg.Migrations, lockTimeout, held, log)
	}()
	switch {
	case err == nil:
	case runCtx != nil && errors.Is(runCtx.Err(), context.DeadlineExceeded):
		err = fmt.Errorf("%w (the migrations ran for longer than DATABASE_MIGRATION_TIMEOUT, %s)", err, timeout)
	case runCtx == nil && waitCtx.Err() != nil:
		err = fmt.Errorf("%w (the migrations waited for their lock, held by another process, for longer than "+
			"DATABASE_MIGRATION_TIMEOUT, %s)", err, timeout)
	}
	runsMu.Lock()
	delete(runs, key)
	run.err = err
	unwatched := run.waiters == 0
	runsMu.Unlock()
	close(run.done)
	if !unwatched {
		return // its waiters return its outcome
	}
	took := time.Since(began).Round(time.Millisecond).String()
	if err != nil {
		log.Error("the database's migrations failed; the next start tries them again",
			"database", direct.ConnConfig.Database, "took", took, "err", err.Error())
		return
	}
	log.Info("the database's migrations are applied", "database", direct.ConnConfig.Database, "took", took)
}

// ErrPoolerUnsaid is Open's answer for a URL that goes through a pooler
// without saying how queries are sent.
var ErrPoolerUnsaid = errors.New("the database url goes through a pooler or proxy (its connection's process id is not its " +
	"server process's) and does not say default_query_exec_mode: add default_query_exec_mode=exec to it " +
	"(PgBouncer before 1.21 keeps no prepared statements in transaction mode), or cache_statement where the " +
	"pooler keeps them (session mode, or PgBouncer 1.21 or later with max_prepared_statements)")

// refuseUnsaidPooler is ErrPoolerUnsaid when pool goes through a pooler and
// url does not name default_query_exec_mode. One round trip, once per pool.
func refuseUnsaidPooler(ctx context.Context, pool *pgxpool.Pool, url string) error {
	if strings.Contains(url, "default_query_exec_mode") {
		return nil
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect %s: %w", pool.Config().ConnConfig.Database, err)
	}
	defer conn.Release()
	pooled, err := throughPooler(ctx, conn.Conn())
	if err != nil {
		return fmt.Errorf("connect %s: %w", pool.Config().ConnConfig.Database, err)
	}
	if pooled {
		return ErrPoolerUnsaid
	}
	return nil
}

// throughPooler reports whether conn reaches PostgreSQL through a pooler:
// PgBouncer answers each client with a process id of its own, so the one
// conn was given at login is not its server process's. The query is sent
// unprepared (a pooler in transaction mode may not keep prepared statements).
func throughPooler(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var pid int64
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`, pgx.QueryExecModeSimpleProtocol).Scan(&pid); err != nil {
		return false, err
	}
	return pid != int64(conn.PgConn().PID()), nil
}

// ensureDatabase creates cc.Database through the maintenance database when missing.
func ensureDatabase(ctx context.Context, cc *pgx.ConnConfig) error {
	admin := cc.Copy()
	admin.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("connect to maintenance database: %w", err)
	}
	defer func() {
		dctx, cancel := Detached(ctx)
		defer cancel()
		_ = conn.Close(dctx)
	}()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, cc.Database).Scan(&exists); err != nil {
		return fmt.Errorf("look up database: %w", err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{cc.Database}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P04" || pgErr.Code == "23505") {
		return nil // created concurrently by another replica
	}
	if err != nil {
		return fmt.Errorf("create database %s: %w", cc.Database, err)
	}
	return nil
}

// MigrationLockKey is the advisory lock that serialises migrations in a
// database. Whoever holds it holds every writer's migration back (each
// build gives up waiting after OpenTimeout, its run of migrations after
// Config.MigrationTimeout), so in a database that readers' roles reach
// only the service's role may take advisory locks
// (env/faasd/postgres-init/10-shop.sh; docs/security.md, "Database roles").
const MigrationLockKey = 7_412_001

// NoTransaction is the first line of a migration that must run outside a
// transaction: one statement that PostgreSQL refuses in a transaction block,
// such as CREATE INDEX CONCURRENTLY, which builds an index on a live table
// without holding back its writers while it builds.
const NoTransaction = "-- migrate: no transaction"

// Migrate applies the files NNNN_name.sql of migrations that are not yet
// recorded in schema_migrations, each in its own transaction, in order. It is
// safe to call concurrently: an advisory lock serialises the callers. When
// every file is recorded it takes no lock; when some are pending, pool must
// reach PostgreSQL directly (the lock is a server session's, which a pooler
// in transaction mode would keep on a server connection nobody unlocks), or
// Migrate refuses and names the first pending file.
//
// A file whose first line is NoTransaction runs as one statement outside a
// transaction, and is recorded after it succeeds. A concurrent index build
// that failed or was interrupted leaves an invalid index behind, which IF NOT
// EXISTS would then take for built: before such a file runs, Migrate drops
// every invalid index the file names (DROP INDEX CONCURRENTLY), so the
// statement builds it again.
//
// Any other file runs with a lock timeout (DefaultMigrationLockTimeout here,
// Config.MigrationLockTimeout through Open): a statement such as ALTER TABLE
// or CREATE INDEX that waits for its lock behind a long transaction queues
// every reader and writer of the table behind itself, a checkout's included,
// for as long as that transaction lasts. With the timeout it gives up
// instead, and its transaction rolls back, letting them through; the file is
// tried again in a fresh transaction after a wait, migrationTries times at
// most and within ctx's deadline. When it never gets its locks, Migrate
// fails with lock_not_available (SQLSTATE 55P03), naming the file and the
// sessions that held locks on the tables it names; the file is not recorded.
func Migrate(ctx context.Context, pool *pgxpool.Pool, migrations fs.FS) error {
	return migrate(ctx, pool, migrations, DefaultMigrationLockTimeout, nil, slog.Default())
}

// migrate is Migrate with the lock timeout of the files run in a
// transaction, and the logger of their tries. When held is not nil, the
// migrations run under the context it returns once the migration lock is
// held (ctx bounds only what comes before); migrate calls its cancel.
func migrate(ctx context.Context, pool *pgxpool.Pool, migrations fs.FS, lockTimeout time.Duration,
	held func() (context.Context, context.CancelFunc), log *slog.Logger) error {
	files, err := migrationFiles(migrations)
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	pending, err := firstPending(ctx, conn.Conn(), files)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if pending == "" {
		return nil
	}
	if pooled, err := throughPooler(ctx, conn.Conn()); err != nil {
		return fmt.Errorf("migrate: %w", err)
	} else if pooled {
		return fmt.Errorf("migrate: %s is pending and the connection goes through a pooler (its process id is not "+
			"its server process's), where the migration lock cannot be held: give the migrations a direct "+
			"connection to PostgreSQL (<SERVICE>_DATABASE_MIGRATION_URL)", pending)
	}
	if err := lockMigrations(ctx, conn.Conn()); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	if held != nil {
		var cancel context.CancelFunc
		ctx, cancel = held()
		defer cancel()
	}
	defer func() {
		dctx, cancel := Detached(ctx)
		defer cancel()
		_, _ = conn.Exec(dctx, `SELECT pg_advisory_unlock($1)`, MigrationLockKey)
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY,
		name text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, f := range files {
		var done bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, f.version).Scan(&done); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if done {
			continue
		}
		sql, err := fs.ReadFile(migrations, f.name)
		if err != nil {
			return err
		}
		if strings.HasPrefix(string(sql), NoTransaction+"\n") {
			if err := migrateOutsideTx(ctx, conn.Conn(), f.version, f.name, string(sql)); err != nil {
				return fmt.Errorf("migration %s: %w", f.name, err)
			}
			continue
		}
		if err := migrateInTx(ctx, conn.Conn(), f, string(sql), lockTimeout, log); err != nil {
			return fmt.Errorf("migration %s: %w", f.name, err)
		}
	}
	return nil
}

// firstPending is the name of the first of files not recorded in
// schema_migrations, "" when every one is. It reads without the lock: a
// file another replica is applying right now counts as pending, and Migrate
// then waits for the lock and finds it done.
func firstPending(ctx context.Context, conn *pgx.Conn, files []migrationFile) (string, error) {
	if len(files) == 0 {
		return "", nil
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`,
		pgx.QueryExecModeSimpleProtocol).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		return files[0].name, nil
	}
	rows, err := conn.Query(ctx, `SELECT version FROM schema_migrations`, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return "", err
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return "", err
	}
	for _, f := range files {
		if !slices.Contains(done, int32(f.version)) {
			return f.name, nil
		}
	}
	return "", nil
}

// migrationFiles lists the NNNN_name.sql files of migrations in order of
// their versions, which must differ.
func migrationFiles(migrations fs.FS) ([]migrationFile, error) {
	var files []migrationFile
	err := fs.WalkDir(migrations, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".sql") {
			return err
		}
		num, _, ok := strings.Cut(path.Base(p), "_")
		v, convErr := strconv.Atoi(num)
		if !ok || convErr != nil {
			return fmt.Errorf("migration %s: name must be NNNN_description.sql", p)
		}
		files = append(files, migrationFile{v, p})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(files, func(a, b migrationFile) int { return a.version - b.version })
	for i := 1; i < len(files); i++ {
		if files[i].version == files[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share a version", files[i-1].name, files[i].name)
		}
	}
	return files, nil
}

// migrationFile is one NNNN_name.sql file of a service's migrations.
type migrationFile struct {
	version int
	name    string
}

// lockMigrations takes the migration lock of the database. It asks again
// until it gets it rather than waiting in pg_advisory_lock: a session blocked
// there keeps a snapshot, and a concurrent index build by the session that
// holds the lock waits for every older snapshot in the database (a deadlock,
// which PostgreSQL breaks by failing the waiter).
func lockMigrations(ctx context.Context, conn *pgx.Conn) error {
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, MigrationLockKey).Scan(&got); err != nil {
			return err
		}
		if got {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// DefaultMigrationLockTimeout is how long a migration run in a transaction
// waits for each lock by default (Config.MigrationLockTimeout): long enough
// for the short transactions of checkouts and sweeps to end, short enough that
// the readers and writers queued behind the waiting migration are held up
// no longer than a slow request.
const DefaultMigrationLockTimeout = 2 * time.Second

// migrationTries and migrationRetryWait bound the tries of a migration whose
// locks were not granted in time: the wait before the next try doubles each
// time (1, 2, 4 and 8 s): about 25 s with the default lock timeout. Open
// applies migrations in a run that OpenTimeout does not cut (see Open): a
// function's build gives up waiting after OpenTimeout (ErrMigrating), it
// answers 503 and builds again at its next request (fnhttp.Lazy), which
// waits for the same run, and gets its error when the last try failed. A
// test shortens them.
var (
	migrationTries     = 5
	migrationRetryWait = time.Second
)

// lockHoldersTime is kept from ctx's deadline after a migration's last try
// for its rollback and the look-up of the sessions holding its locks: a try
// cut by the deadline would end with a bare context error instead.
const lockHoldersTime = time.Second

// migrateInTx runs a migration and records it in one transaction, with
// lockTimeout as the transaction's lock_timeout (SET LOCAL: the session's own
// setting is back once it ends), so the migration is recorded once, when it
// committed. A try whose lock was not granted in time (lock_not_available)
// rolled back whole; the next one runs after a wait, in a fresh transaction,
// while the caller still holds the migration lock. The error of the last try
// names the sessions that held locks on the relations sql names; each try
// before it is logged with them, as a warning: the function is not serving
// while it waits.
func migrateInTx(ctx context.Context, conn *pgx.Conn, f migrationFile, sql string, lockTimeout time.Duration, log *slog.Logger) error {
	wait := migrationRetryWait
	for try := 1; ; try++ {
		lt := lockTimeout
		if dl, ok := ctx.Deadline(); ok {
			lt = min(lt, time.Until(dl)-lockHoldersTime)
		}
		// Rounded down to 0 ms, lock_timeout would wait for ever.
		lt = max(lt, time.Millisecond)
		err := Tx(ctx, conn, func(tx pgx.Tx) error {
			// lock_timeout's unit is the millisecond; SET takes no parameter.
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = "+strconv.FormatInt(lt.Milliseconds(), 10)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, f.version, path.Base(f.name))
			return err
		})
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55P03" {
			return err
		}
		if try == migrationTries || !timeForAnotherTry(ctx, wait) {
			tries := "1 try"
			if try > 1 {
				tries = strconv.Itoa(try) + " tries"
			}
			return fmt.Errorf("a lock it takes was not granted within the lock timeout (%s) in %s%s; "+
				"the next Migrate tries it again: %w", lockTimeout, tries, lockHolders(ctx, conn, sql, lt), err)
		}
		log.Warn("a migration's lock was not granted within the lock timeout; it is tried again",
			"migration", path.Base(f.name), "try", try, "lock_timeout", lockTimeout.String(), "next_try_in", wait.String(),
			"held_by", strings.TrimPrefix(lockHolders(ctx, conn, sql, lt), "; held by "))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting to try again after %v: %w", err, ctx.Err())
		case <-t.C:
		}
		wait *= 2
	}
}

// timeForAnotherTry reports whether ctx's deadline leaves room for a wait of
// wait, then a try of 100 ms at least, then the time for its last error.
func timeForAnotherTry(ctx context.Context, wait time.Duration) bool {
	dl, ok := ctx.Deadline()
	return !ok || time.Until(dl) >= wait+100*time.Millisecond+lockHoldersTime
}

// lockHolders describes, for a migration's error, the sessions that have been
// in a transaction for held at least and hold a lock on a relation of the
// current schema that sql names: the ones its last try waited behind. By now
// that try has rolled back and left the lock queue, so pg_blocking_pids has
// nothing to say; a session younger than the try could not have held it back
// (it would have queued behind it). The sessions' queries are left out: a
// query typed by hand may hold data that has no place in a log. "" when none
// is found, or the look-up failed: it only explains the error.
//
// It sees only what the migrating role may see: a role that is neither a
// superuser nor a member of pg_read_all_stats reads xact_start (and state)
// as NULL for another role's sessions, so where each service migrates as its
// own role (shop_<service>), a session of the relay (shop_relay) or of an
// operator (postgres) holding the lock is left out, and the error names
// nobody or only the service's own sessions. The superuser finds them all
// (docs/deploy-faasd.md, step 7, item 2).
func lockHolders(ctx context.Context, conn *pgx.Conn, sql string, held time.Duration) string {
	rows, err := conn.Query(ctx, `SELECT a.pid, coalesce(a.usename, ''), a.application_name, coalesce(a.state, ''),
			extract(epoch FROM now() - a.xact_start)::float8, c.relname
		FROM pg_locks l
		JOIN pg_class c ON c.oid = l.relation
		JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'relation' AND l.granted
			AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND c.relnamespace = current_schema()::regnamespace
			AND a.pid <> pg_backend_pid() AND a.xact_start <= now() - make_interval(secs => $1)
		ORDER BY a.xact_start, a.pid, c.relname`, held.Seconds())
	if err != nil {
		return ""
	}
	var (
		b                     strings.Builder
		pid, lastPID          int32
		user, app, state, rel string
		age                   float64
	)
	if _, err := pgx.ForEachRow(rows, []any{&pid, &user, &app, &state, &age, &rel}, func() error {
		if !names(sql, rel) {
			return nil
		}
		if pid == lastPID {
			b.WriteString(", " + rel)
			return nil
		}
		lastPID = pid
		if b.Len() == 0 {
			b.WriteString("; held by ")
		} else {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "pid %d (user %q", pid, user)
		if app != "" {
			fmt.Fprintf(&b, ", application %q", app)
		}
		fmt.Fprintf(&b, ", %s, in a transaction for %s) on %s", state, time.Duration(age*float64(time.Second)).Round(time.Second), rel)
		return nil
	}); err != nil {
		return ""
	}
	return b.String()
}

// migrateOutsideTx runs a NoTransaction migration: it drops the invalid
// indexes the file names (left by an earlier build that failed), runs the
// file as one simple-protocol statement and records it.
//
// It runs without a lock timeout. The statements that need this path, CREATE
// INDEX CONCURRENTLY and the like, take a SHARE UPDATE EXCLUSIVE lock, which
// an INSERT, UPDATE, DELETE or SELECT neither waits for nor queues behind,
// and then wait, by design and again through lock waits, for every
// transaction older than their phases: a lock timeout would fail the build
// whenever one lasted longer than it (a report, a sweep), leaving an invalid
// index to drop and a retry that fails the same way, without sparing any
// reader or writer a wait.
func migrateOutsideTx(ctx context.Context, conn *pgx.Conn, version int, name, sql string) error {
	rows, err := conn.Query(ctx, `SELECT n.nspname, c.relname
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE NOT i.indisvalid AND n.nspname = current_schema()`)
	if err != nil {
		return err
	}
	var invalid []pgx.Identifier
	var schema, index string
	if _, err := pgx.ForEachRow(rows, []any{&schema, &index}, func() error {
		invalid = append(invalid, pgx.Identifier{schema, index})
		return nil
	}); err != nil {
		return err
	}
	for _, ix := range invalid {
		if !names(sql, ix[1]) {
			continue
		}
		if _, err := conn.Exec(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+ix.Sanitize()); err != nil {
			return fmt.Errorf("drop the invalid index %s: %w", ix[1], err)
		}
	}
	if _, err := conn.Exec(ctx, sql); err != nil { // no arguments: the simple protocol, no transaction block
		return err
	}
	_, err = conn.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, version, path.Base(name))
	return err
}

// names reports whether sql holds ident as a whole word (not inside a longer
// identifier).
func names(sql, ident string) bool {
	return regexp.MustCompile(`(^|[^A-Za-z0-9_$])` + regexp.QuoteMeta(ident) + `($|[^A-Za-z0-9_$])`).MatchString(sql)
}

// Beginner is what Tx needs: a pool or a connection.
type Beginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// finishTimeout bounds what Detached allows: far longer than any commit
// takes (milliseconds, a lock wait behind another transaction seconds), far
// shorter than what a connection that stopped answering would hold its pool
// slot for without it: on a half-open TCP connection no keepalive probe runs
// while a commit's bytes wait unacknowledged, so the kernel retransmits them
// for many minutes, past every caller's deadline. A test shortens it.
var finishTimeout = 10 * time.Second

// Detached returns a context for work that must run to its end even when the
// caller hangs up or its deadline passes, a transaction's COMMIT or ROLLBACK,
// or the record of an outcome decided elsewhere: ctx's values without its
// cancellation, bounded by a timeout of its own. When the timeout passes
// mid-query, pgx asks PostgreSQL to cancel it and closes the connection, so
// the pool gets its slot back; the caller learns nothing of the outcome, as
// with any broken connection. Tx starts it once the transaction's work is
// done; ExecTx and BatchTx.Commit send their statements with the COMMIT, so
// for them it bounds the batch, from when it is sent. Either may end up to
// its timeout after the caller's deadline, unless the caller set a time to
// finish by (FinishBy).
func Detached(ctx context.Context) (context.Context, context.CancelFunc) {
	d := finishTimeout
	if t, ok := ctx.Value(finishByKey{}).(time.Time); ok {
		d = min(d, time.Until(t))
	}
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}

// Tx runs fn in a transaction: committed when fn returns nil, rolled back
// otherwise. Commit and rollback use a Detached context, so a client that
// hangs up never leaves a transaction half-finished. A COMMIT whose answer
// never came is a *Doubt (see Settle).
func Tx(ctx context.Context, db Beginner, fn func(tx pgx.Tx) error) error {
	return TxWith(ctx, db, pgx.TxOptions{}, fn)
}

// TxWith is Tx with explicit options (isolation level, read-only).
func TxWith(ctx context.Context, db Beginner, opts pgx.TxOptions, fn func(tx pgx.Tx) error) error {
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	// The detached context starts once fn is done: it bounds the commit or
	// the rollback, not the transaction's own work.
	err = fn(tx)
	dctx, cancel := Detached(ctx)
	defer cancel()
	if err != nil {
		_ = tx.Rollback(dctx)
		return err
	}
	if err := tx.Commit(dctx); err != nil {
		return fmt.Errorf("commit: %w", doubt(tx.Conn().PgConn(), err))
	}
	return nil
}

// IsUniqueViolation reports whether err is a unique constraint violation, and
// of constraint when it is not empty.
func IsUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && (constraint == "" || pgErr.ConstraintName == constraint)
}

// IsCheckViolation reports whether err is a CHECK constraint violation.
func IsCheckViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23514"
}

// OpenTimeout bounds connecting to a database, and waiting for its
// migrations, while a function builds its dependencies: migrations that take
// longer go on in the background (Open, ErrMigrating).
const OpenTimeout = 15 * time.Second

// PasswordSecret is the secret holding the password of service's login role
// (db-password-users for "users", …). Each service's database is owned by a
// role of its own, shop_<service>, that may connect to no other service's
// database (env/faasd/postgres-init/10-shop.sh): a function declares its
// service's secret alone, so a compromised one reaches one database.
func PasswordSecret(service string) string {
	return "db-password-" + service
}

// ReaderPasswordSecret is the secret holding the password of the read-only
// login role of service's public readers, shop_<service>_reader
// (db-password-catalog-reader for "catalog"): it may connect to the
// service's database and read the tables its readers read, which the
// service's migration *_reader_grants.sql grants it, and write nothing
// (env/faasd/postgres-init/10-shop.sh; docs/security.md, "Database roles").
// A secret's name takes no underscore on Kubernetes, a role's no hyphen
// unquoted: hence the two spellings.
func ReaderPasswordSecret(service string) string {
	return PasswordSecret(service) + "-reader"
}

// ReaderURLVar is the variable of service's readers' own database URL,
// <SERVICE>_READER_DATABASE_URL (ReaderConfigFrom): a variable of its own,
// and not <SERVICE>_DATABASE_URL set again in a reader's stack.yml entry,
// since that entry is the same on a developer machine, where every process
// logs in as postgres, and in a deployment.
func ReaderURLVar(service string) string {
	return strings.ToUpper(service) + "_READER_DATABASE_URL"
}

// ReaderSharesWritersVar is the variable, <SERVICE>_READER_SHARES_WRITERS_ROLE,
// that set to true makes ReaderConfigFrom return the writers' settings even
// where ReaderURLVar(service) is set: dev/bundlegen sets it on a faasd-CE
// bundle that serves a writer of the database beside its readers. A
// variable of its own, because faas-cli merges a function's
// environment_file over its environment (dev/stackfile.Environment): a
// bundle's entry cannot set the readers' URL empty over env/production.yml's.
func ReaderSharesWritersVar(service string) string {
	return strings.ToUpper(service) + "_READER_SHARES_WRITERS_ROLE"
}

// ReaderConfigFrom is how a function that only reads service's database (a
// public reader: get-product, list-products, search-products, get-stock)
// reads its settings from c. With ReaderURLVar(service) set, they are the
// readers' role's: that URL, the password of the optional secret
// ReaderPasswordSecret(service), DATABASE_MAX_CONNS, and ReadOnly (Open
// migrates nothing and checks that every file of migrations is applied).
// Unset, or with ReaderSharesWritersVar(service) true, they are
// ConfigFrom's, the writers': a developer machine and `make run`, where
// every process logs in as postgres, and a faasd-CE bundle that serves a
// writer of the same database; the reader then migrates as a writer does.
func ReaderConfigFrom(c *config.Reader, service string, migrations fs.FS) Config {
	url := c.String(ReaderURLVar(service), "")
	if url == "" || c.Bool(ReaderSharesWritersVar(service), false) {
		return ConfigFrom(c, service, migrations)
	}
	return Config{
		URL:        url,
		MaxConns:   int32(c.Int("DATABASE_MAX_CONNS", 3, 1, 20)),
		Migrations: migrations,
		Password:   c.OptionalSecret(ReaderPasswordSecret(service)),
		ReadOnly:   true,
	}
}

// ConfigFrom is how every service reads the settings of its database from c:
// <SERVICE>_DATABASE_URL (required; service is "users", "orders", …),
// <SERVICE>_DATABASE_MIGRATION_URL (optional: the same database reached
// directly where the first goes through a pooler; see Config.MigrationURL),
// DATABASE_CREATE (default false), DATABASE_MAX_CONNS (default 3, 1 to 20),
// DATABASE_MIGRATION_LOCK_TIMEOUT (default 2s, 1ms or more; see
// Config.MigrationLockTimeout), DATABASE_MIGRATION_TIMEOUT (default 1h, 1s
// or more; see Config.MigrationTimeout) and the optional secret PasswordSecret(service),
// the password of the service's own login role; c collects the problems.
// migrations are the service's own. Open the result with Open, under
// OpenTimeout.
func ConfigFrom(c *config.Reader, service string, migrations fs.FS) Config {
	lockTimeout := c.Duration("DATABASE_MIGRATION_LOCK_TIMEOUT", DefaultMigrationLockTimeout)
	if lockTimeout < time.Millisecond {
		// PostgreSQL counts it in milliseconds, and takes 0 for "wait for
		// ever", which is what the timeout is there to prevent.
		c.Fail("DATABASE_MIGRATION_LOCK_TIMEOUT", errors.New("must be 1ms or more"))
	}
	migrationTimeout := c.Duration("DATABASE_MIGRATION_TIMEOUT", DefaultMigrationTimeout)
	if migrationTimeout < time.Second {
		c.Fail("DATABASE_MIGRATION_TIMEOUT", errors.New("must be 1s or more"))
	}
	return Config{
		URL:                  c.Required(strings.ToUpper(service) + "_DATABASE_URL"),
		CreateDatabase:       c.Bool("DATABASE_CREATE", false),
		MaxConns:             int32(c.Int("DATABASE_MAX_CONNS", 3, 1, 20)),
		Migrations:           migrations,
		Password:             c.OptionalSecret(PasswordSecret(service)),
		MigrationURL:         c.String(strings.ToUpper(service)+"_DATABASE_MIGRATION_URL", ""),
		MigrationLockTimeout: lockTimeout,
		MigrationTimeout:     migrationTimeout,
	}
}
