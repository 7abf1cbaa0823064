package usersdb_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/outbox"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/users"
	"github.com/shopfaas/shop/internal/users/usersdb"
)

func newStore(t *testing.T) (*usersdb.Store, func(sql string, args ...any)) {
	t.Helper()
	pool := pgtest.Open(t, usersdb.Migrations())
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	return usersdb.New(pool), exec
}

func registration(t *testing.T, email, password, name string) users.Registration {
	t.Helper()
	reg, err := users.NewRegistration(email, password, name)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func TestMigrationsIncludeOutboxSchema(t *testing.T) {
	b, err := fs.ReadFile(usersdb.Migrations(), "0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), outbox.Schema) {
		t.Fatal("0001_init.sql must contain outbox.Schema verbatim")
	}
}

// notify-user's processed events (internal/inbox), with the index the
// relay's cleanup needs.
func TestMigrationsIncludeInbox(t *testing.T) {
	for file, want := range map[string]string{
		"0002_notifications.sql":           inbox.Schema,
		"0004_processed_events_by_age.sql": inbox.PruneIndex,
		"0008_inbox_retentions.sql":        inbox.RetentionSchema,
		"0009_inbox_retention_raises.sql":  inbox.RetentionRaiseSchema,
		"0010_inbox_retentions_finite.sql": inbox.RetentionFiniteSchema,
	} {
		b, err := fs.ReadFile(usersdb.Migrations(), file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s must contain %q verbatim", file, want)
		}
	}
}

func TestRegisterWritesUserAndEventInOneTransaction(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	u, err := s.Register(ctx, registration(t, "Ann@Example.com", "password-1", "Ann"))
	if err != nil {
		t.Fatal(err)
	}
	if u.ID.Version() != 7 || u.Role != users.RoleCustomer || u.Email != "ann@example.com" || u.CreatedAt.IsZero() {
		t.Fatalf("user = %+v, want a v7 id, role customer, the normalised email and a creation time", u)
	}
	ev := storedWithItsEvent(t, s, u)
	if ev.Type != events.UserRegistered || ev.Subject != u.ID.String() || ev.Envelope.Source != users.EventSource ||
		ev.Envelope.Type != events.UserRegistered || ev.Envelope.Subject != u.ID.String() || ev.Envelope.SpecVersion != "1.0" {
		t.Fatalf("outbox row = %+v", ev)
	}
	var data users.Registered
	if err := json.Unmarshal(ev.Envelope.Data, &data); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(users.Registered{UserID: u.ID, Email: "ann@example.com", Name: "Ann"}, data); diff != "" {
		t.Fatalf("event data (-want +got):\n%s", diff)
	}
}

func TestRegisterDuplicateEmailWritesNothing(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if _, err := s.Register(ctx, registration(t, "bob@example.com", "password-1", "Bob")); err != nil {
		t.Fatal(err)
	}
	for _, email := range []string{"bob@example.com", "BOB@example.COM"} {
		_, err := s.Register(ctx, registration(t, email, "password-2", "Other Bob"))
		if !fault.Is(err, fault.Conflict, "email_taken") {
			t.Fatalf("Register(%s) err = %v, want email_taken", email, err)
		}
	}
	pending, err := s.PendingEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 {
		t.Fatalf("outbox has %d rows after refused duplicates, want 1", len(pending))
	}
}

// A registration for a taken email is refused before the password is hashed:
// a flood of them costs no argon2 work (issue 12, finding 4).
func TestRegisterDuplicateEmailHashesNothing(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	hashes := 0
	usersdb.SetHasher(s, func(ctx context.Context, p string) (string, error) { hashes++; return auth.HashPassword(ctx, p) })
	if _, err := s.Register(ctx, registration(t, "carol@example.com", "password-1", "Carol")); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := s.Register(ctx, registration(t, "Carol@Example.com", "password-2", "Other")); !fault.Is(err, fault.Conflict, "email_taken") {
			t.Fatalf("err = %v, want email_taken", err)
		}
	}
	if hashes != 1 {
		t.Errorf("%d password hashes for 1 account and 3 refused duplicates, want 1", hashes)
	}
}

// When the event cannot be written, the account must not exist either: both
// are one transaction.
func TestRegisterRollsBackUserWhenOutboxFails(t *testing.T) {
	ctx := context.Background()
	s, exec := newStore(t)
	exec(`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'outbox down'; END $$`)
	exec(`CREATE TRIGGER refuse BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION refuse()`)
	_, err := s.Register(ctx, registration(t, "carl@example.com", "password-1", "Carl"))
	if fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("err = %v, want unavailable", err)
	}
	exec(`DROP TRIGGER refuse ON outbox`)
	// The email is still free: the failed registration left no row behind.
	u, err := s.Register(ctx, registration(t, "carl@example.com", "password-1", "Carl"))
	if err != nil {
		t.Fatalf("registering again after the rollback: %v", err)
	}
	pending, err := s.PendingEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].Subject != u.ID.String() {
		t.Fatalf("outbox = %+v, want only the second registration's event", pending)
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	u, err := s.Register(ctx, registration(t, "dora@example.com", "password-1", "Dora"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Authenticate(ctx, users.Login{Email: "dora@example.com", Password: "password-1"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(u, got); diff != "" {
		t.Fatalf("Authenticate (-want +got):\n%s", diff)
	}
	for name, login := range map[string]users.Login{
		"wrong password":     {Email: "dora@example.com", Password: "password-2"},
		"unknown email":      {Email: "nobody@example.com", Password: "password-1"},
		"short password":     {Email: "dora@example.com", Password: "pass"},
		"other case in hash": {Email: "dora@example.com", Password: "PASSWORD-1"},
	} {
		if _, err := s.Authenticate(ctx, login); !fault.Is(err, fault.Unauthenticated, "invalid_credentials") {
			t.Errorf("%s: err = %v, want invalid_credentials", name, err)
		}
	}
}

// An account whose email stayed uncomposed ("e" and the combining U+0301
// where "é" is meant: registered before 2026-12-07 and left so by the
// migration 0011, because another account holds the composed form) logs in
// with the spelling it registered, and that spelling stays taken; the
// account of the composed form logs in with its own.
func TestAnAccountStoredUncomposedStillLogsIn(t *testing.T) {
	ctx := context.Background()
	s, exec := newStore(t)
	composed, err := s.Register(ctx, registration(t, "zo\u00eb@example.com", "password-2", "Zoë"))
	if err != nil {
		t.Fatal(err)
	}
	hash, err := auth.HashPassword(ctx, "password-1")
	if err != nil {
		t.Fatal(err)
	}
	old := uuid.Must(uuid.NewV7())
	exec(`INSERT INTO users (id, email, name, password_hash) VALUES ($1, $2, 'Zoë', $3)`, old, "zoe\u0308@example.com", hash)
	for _, tc := range []struct {
		email, password string
		want            uuid.UUID
	}{
		{"zoe\u0308@example.com", "password-1", old},
		{" ZOE\u0308@Example.com", "password-1", old},
		{"zo\u00eb@example.com", "password-2", composed.ID},
		{"ZO\u00cb@example.com", "password-2", composed.ID},
	} {
		l, err := users.NewLogin(tc.email, tc.password)
		if err != nil {
			t.Fatal(err)
		}
		if u, err := s.Authenticate(ctx, l); err != nil || u.ID != tc.want {
			t.Errorf("login as %+q: account %s, %v; want %s", tc.email, u.ID, err, tc.want)
		}
	}
	for _, email := range []string{"zoe\u0308@example.com", "ZO\u00cb@example.com"} {
		if _, err := s.Register(ctx, registration(t, email, "password-3", "Other")); !fault.Is(err, fault.Conflict, "email_taken") {
			t.Errorf("registering %+q: err = %v, want email_taken", email, err)
		}
	}
}

// 0011 rewrites the emails stored uncomposed before 2026-12-07 to their
// composed form (NFC), but for an address another account already holds
// composed, and for all but the oldest of accounts whose spellings compose
// alike (the unique index allows one), and for an address longer than the
// length CHECK allows once composed: those keep their spelling.
func TestTheMigrationComposesStoredEmails(t *testing.T) {
	ctx := context.Background()
	all := usersdb.Migrations()
	pool := pgtest.Open(t, migrationsBefore(t, "0011"))
	insert := func(email string, age time.Duration) uuid.UUID {
		t.Helper()
		id := uuid.Must(uuid.NewV7())
		if _, err := pool.Exec(ctx, `INSERT INTO users (id, email, name, password_hash, created_at)
			VALUES ($1, $2, 'N', '$argon2id$x', $3)`, id, email, time.Now().Add(-age)); err != nil {
			t.Fatal(err)
		}
		return id
	}
	want := map[uuid.UUID]string{}
	want[insert("rene\u0301@example.com", 0)] = "ren\u00e9@example.com"
	want[insert("zoe\u0308@example.com", 0)] = "zoe\u0308@example.com"
	want[insert("zo\u00eb@example.com", time.Hour)] = "zo\u00eb@example.com"
	want[insert("e\u0301\u0323@example.com", time.Hour)] = "\u1eb9\u0301@example.com"
	want[insert("e\u0323\u0301@example.com", 0)] = "e\u0323\u0301@example.com"
	want[insert("ann@example.com", 0)] = "ann@example.com"
	// 254 characters, which registration accepted before emails were
	// composed; composed (each U+0958 into two) it would break the length
	// CHECK and roll the whole migration back: it keeps its spelling, and
	// logs in with it.
	long := "a@" + strings.Repeat("\u0958.", 125) + "co"
	hash, err := auth.HashPassword(ctx, "password-1")
	if err != nil {
		t.Fatal(err)
	}
	longID := insert(long, 0)
	want[longID] = long
	if _, err := pool.Exec(ctx, `UPDATE users SET password_hash = $2 WHERE id = $1`, longID, hash); err != nil {
		t.Fatal(err)
	}
	if err := postgres.Migrate(ctx, pool, all); err != nil {
		t.Fatal(err)
	}
	l, err := users.NewLogin(long, "password-1")
	if err != nil {
		t.Fatal(err)
	}
	if u, err := usersdb.New(pool).Authenticate(ctx, l); err != nil || u.ID != longID {
		t.Errorf("login with the address kept uncomposed: account %s, %v; want %s", u.ID, err, longID)
	}
	got := map[uuid.UUID]string{}
	rows, _ := pool.Query(ctx, `SELECT id, email FROM users`)
	var id uuid.UUID
	var email string
	if _, err := pgx.ForEachRow(rows, []any{&id, &email}, func() error { got[id] = email; return nil }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("emails after the migration (-want +got):\n%s", diff)
	}
}

// migrationsBefore is the users database's migrations whose names sort
// before name: the schema an upgrade to name starts from.
func migrationsBefore(t *testing.T, name string) fs.FS {
	t.Helper()
	all := usersdb.Migrations()
	before := fstest.MapFS{}
	entries, err := fs.ReadDir(all, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() < name {
			b, err := fs.ReadFile(all, e.Name())
			if err != nil {
				t.Fatal(err)
			}
			before[e.Name()] = &fstest.MapFile{Data: b}
		}
	}
	return before
}

// Registration accepted "a" U+037E "b" until 2026-12-07 (the syntax was
// checked as sent only); 0011 composes it into "a;b", which registration
// refuses. The account still logs in, with the spelling its owner used and
// with the composed one (login checks no syntax), and neither spelling can
// be registered again.
func TestAnAccountComposedIntoARefusedSpellingStillLogsIn(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, migrationsBefore(t, "0011"))
	hash, err := auth.HashPassword(ctx, "password-1")
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.Must(uuid.NewV7())
	if _, err := pool.Exec(ctx, `INSERT INTO users (id, email, name, password_hash) VALUES ($1, $2, 'Ann', $3)`,
		id, "a\u037eb@example.com", hash); err != nil {
		t.Fatal(err)
	}
	if err := postgres.Migrate(ctx, pool, usersdb.Migrations()); err != nil {
		t.Fatal(err)
	}
	s := usersdb.New(pool)
	u, err := s.Get(ctx, id)
	if err != nil || u.Email != "a;b@example.com" {
		t.Fatalf("the account after 0011: email %+q, %v; want %+q", u.Email, err, "a;b@example.com")
	}
	for _, email := range []string{"a\u037eb@example.com", "A;B@example.com"} {
		l, err := users.NewLogin(email, "password-1")
		if err != nil {
			t.Fatal(err)
		}
		if u, err := s.Authenticate(ctx, l); err != nil || u.ID != id {
			t.Errorf("login as %+q: account %s, %v; want %s", email, u.ID, err, id)
		}
		if _, err := users.NewRegistration(email, "password-2", "Other"); !fault.Is(err, fault.Invalid, "invalid_request") {
			t.Errorf("registering %+q: err = %v, want invalid_request", email, err)
		}
	}
}

func TestGet(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if _, err := s.Get(ctx, uuid.New()); !fault.Is(err, fault.NotFound, "") {
		t.Fatalf("Get(unknown) err = %v, want not found", err)
	}
	u, err := s.Register(ctx, registration(t, "eve@example.com", "password-1", "Eve"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, u.ID); err != nil || got.ID != u.ID || got.Email != u.Email {
		t.Fatalf("Get(registered) = %+v, %v", got, err)
	}
}

// No code of the module deletes an account: a token lives as long as its
// subject exists only because accounts are never deleted (docs/security.md,
// "Who can mint a token", part 4). Deleting or disabling accounts needs token
// revocation first; this test is the reminder.
func TestNoAccountIsEverDeleted(t *testing.T) {
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	deletes := regexp.MustCompile(`(?is)\b(DELETE\s+FROM|TRUNCATE(\s+TABLE)?)\s+(ONLY\s+)?("?public"?\.)?"?users"?\b`)
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".local" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !(strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".sql")) || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checked++
		if loc := deletes.FindIndex(b); loc != nil {
			t.Errorf("%s deletes accounts (%q): add token revocation first", path, b[loc[0]:loc[1]])
		}
		return nil
	})
	if err != nil || checked < 100 {
		t.Fatalf("checked %d files: %v", checked, err)
	}
}

func TestEnsureAdmin(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	reg := registration(t, "Admin@Example.com", "admin-password-1", "Administrator")

	created, changed, err := s.EnsureAdmin(ctx, reg, false)
	if err != nil || !changed || created.Role != users.RoleAdmin {
		t.Fatalf("first EnsureAdmin = %+v, %v, %v; want a new admin", created, changed, err)
	}
	again, changed, err := s.EnsureAdmin(ctx, reg, false)
	if err != nil || changed {
		t.Fatalf("second EnsureAdmin changed=%v err=%v; want no change", changed, err)
	}
	if diff := cmp.Diff(created, again); diff != "" {
		t.Fatalf("second EnsureAdmin (-first +second):\n%s", diff)
	}

	// A new password is applied; the old one stops working.
	newPw := registration(t, "admin@example.com", "admin-password-2", "Administrator")
	if _, changed, err := s.EnsureAdmin(ctx, newPw, false); err != nil || !changed {
		t.Fatalf("EnsureAdmin with a new password: changed=%v err=%v", changed, err)
	}
	if _, err := s.Authenticate(ctx, users.Login{Email: "admin@example.com", Password: "admin-password-2"}); err != nil {
		t.Fatalf("new admin password refused: %v", err)
	}
	if _, err := s.Authenticate(ctx, users.Login{Email: "admin@example.com", Password: "admin-password-1"}); err == nil {
		t.Fatal("old admin password still accepted")
	}

	// An existing customer is not adopted unless promotion is asked for:
	// anyone may have registered the address first.
	cust, err := s.Register(ctx, registration(t, "boss@example.com", "password-1", "Boss"))
	if err != nil {
		t.Fatal(err)
	}
	if u, changed, err := s.EnsureAdmin(ctx, registration(t, "boss@example.com", "password-2", "Boss"), false); !fault.Is(err, fault.Conflict, fault.CodeEmailTaken) || changed {
		t.Fatalf("EnsureAdmin of a customer's email without promote = %+v, %v, %v; want email_taken, nothing changed", u, changed, err)
	}
	if u, err := s.Authenticate(ctx, users.Login{Email: "boss@example.com", Password: "password-1"}); err != nil || u.Role != users.RoleCustomer {
		t.Fatalf("the refused customer: %+v %v; want it a customer with its own password", u, err)
	}
	// Asked for, an existing customer is promoted, keeping its id.
	promoted, changed, err := s.EnsureAdmin(ctx, registration(t, "boss@example.com", "password-1", "Boss"), true)
	if err != nil || !changed || promoted.ID != cust.ID || promoted.Role != users.RoleAdmin {
		t.Fatalf("promote = %+v, %v, %v; want the customer %s as admin", promoted, changed, err, cust.ID)
	}

	// Only creations announce a registration.
	pending, err := s.PendingEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, p := range pending {
		subjects = append(subjects, p.Subject)
	}
	if diff := cmp.Diff([]string{created.ID.String(), cust.ID.String()}, subjects); diff != "" {
		t.Fatalf("outbox subjects (-want +got):\n%s", diff)
	}
}

// EnsureAdmin (cmd/seed) finds an account whose email stayed uncomposed by
// the spelling it is stored in, as registration and login do: it promotes
// it when asked, refuses it otherwise, and never tries to create a second
// account that registration refuses.
func TestEnsureAdminFindsAnAccountStoredUncomposed(t *testing.T) {
	ctx := context.Background()
	s, exec := newStore(t)
	hash, err := auth.HashPassword(ctx, "password-1")
	if err != nil {
		t.Fatal(err)
	}
	old := uuid.Must(uuid.NewV7())
	exec(`INSERT INTO users (id, email, name, password_hash) VALUES ($1, $2, 'Zoë', $3)`, old, "zoe\u0308@example.com", hash)
	reg := registration(t, "Zoe\u0308@Example.com", "admin-password-1", "Zoë")
	if u, changed, err := s.EnsureAdmin(ctx, reg, false); !fault.Is(err, fault.Conflict, fault.CodeEmailTaken) || changed {
		t.Fatalf("EnsureAdmin without promote = %+v, %v, %v; want email_taken, nothing changed", u, changed, err)
	}
	u, changed, err := s.EnsureAdmin(ctx, reg, true)
	if err != nil || !changed || u.ID != old || u.Role != users.RoleAdmin {
		t.Fatalf("EnsureAdmin with promote = %+v, %v, %v; want %s promoted", u, changed, err, old)
	}
	if _, changed, err := s.EnsureAdmin(ctx, reg, false); err != nil || changed {
		t.Fatalf("EnsureAdmin again = %v, %v; want nothing changed", changed, err)
	}
}

// A registration whose COMMIT went through but whose answer was lost (the
// connection broke after the server committed) is in doubt: Register settles
// it and reads the account it would have created, and answers it as a clean
// commit does, not a 503 whose retry the account, now there, answers 409
// email_taken. One whose COMMIT never reached the server is the 503 and
// leaves the email free for the retry.
func TestRegisterSettlesACommitInDoubt(t *testing.T) {
	ctx := context.Background()
	for _, committed := range []bool{true, false} {
		t.Run(map[bool]string{true: "committed", false: "not committed"}[committed], func(t *testing.T) {
			pool, faults := pgtest.WithFaults(t, pgtest.Open(t, usersdb.Migrations()))
			s := usersdb.New(pool)
			faults.Arm(pgtest.Fault{Marker: "commit", Committed: committed})
			u, err := s.Register(ctx, registration(t, "Dora@Example.com", "password-1", "Dora"))
			if faults.Fired() != 1 {
				t.Fatalf("the connection did not break at the COMMIT (err %v): the test proves nothing", err)
			}
			if !committed {
				if fault.KindOf(err) != fault.Unavailable {
					t.Fatalf("a registration whose COMMIT never reached the server: %+v, %v; want unavailable", u, err)
				}
				if _, err := s.Register(ctx, registration(t, "dora@example.com", "password-1", "Dora")); err != nil {
					t.Fatalf("the retry of a registration that did not commit: %v, want it registered", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("a registration that committed, its answer lost: %v; want the account it created", err)
			}
			if u.ID.Version() != 7 || u.Role != users.RoleCustomer || u.Email != "dora@example.com" || u.Name != "Dora" || u.CreatedAt.IsZero() {
				t.Fatalf("user = %+v, want the account registered", u)
			}
			if ev := storedWithItsEvent(t, s, u); ev.Subject != u.ID.String() {
				t.Fatalf("outbox row = %+v, want the registration's event", ev)
			}
		})
	}
}

// storedWithItsEvent checks that Get reads u back as registered and that the
// outbox holds one event, which it returns.
func storedWithItsEvent(t *testing.T, s *usersdb.Store, u users.User) usersdb.PendingEvent {
	t.Helper()
	got, err := s.Get(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(u, got); diff != "" {
		t.Fatalf("Get (-registered +got):\n%s", diff)
	}
	pending, err := s.PendingEvents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 {
		t.Fatalf("outbox has %d rows, want 1", len(pending))
	}
	return pending[0]
}
