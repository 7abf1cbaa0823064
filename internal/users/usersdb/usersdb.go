// Package usersdb stores the users service's accounts in its own PostgreSQL
// database. Password hashes are computed, stored and checked here and never
// leave the package; every account creation and its user.registered.v1 event
// are written in one transaction (the outbox), so the event exists if and only
// if the account does.
package usersdb

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/outbox"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/users"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the users database's versioned migrations.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrationFiles, "migrations") // cannot fail: the directory is embedded
	return sub
}

// emailKey is the unique index that makes emails unique case-insensitively.
const emailKey = "users_email_key"

// Store reads and writes accounts. It is safe for concurrent use.
type Store struct {
	db   *pgxpool.Pool
	hash func(ctx context.Context, password string) (string, error) // auth.HashPassword; tests count calls
}

// New returns a store over pool, whose database has Migrations applied.
func New(pool *pgxpool.Pool) *Store { return &Store{db: pool, hash: auth.HashPassword} }

const userColumns = `id, email, name, role, created_at`

func scanUser(row pgx.Row) (users.User, error) {
	var u users.User
	err := row.Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.CreatedAt)
	return u, err
}

// unavailable classifies a database failure: the client may retry later.
func unavailable(err error) error {
	return fault.Wrap(err, fault.Unavailable, fault.CodeUnavailable, "the users database is unavailable")
}

// Register creates a customer account for reg and writes its
// user.registered.v1 event (subject: the user id) in the same transaction.
// An email already used, in any letter case and either Unicode spelling
// (users.ComposeEmail; an account stored uncomposed before 2026-12-07 is
// found by reg.Spelled), is users.ErrEmailTaken
// (fault.Conflict) and writes nothing; it is looked up before the password is
// hashed, so a flood of registrations for taken emails costs no argon2 work
// (the unique index still decides a race). The password is hashed before the
// transaction starts. Database failures are fault.Unavailable, but for a
// COMMIT whose answer was lost: Register settles it and answers the account
// when it committed (see settle).
func (s *Store) Register(ctx context.Context, reg users.Registration) (users.User, error) {
	return s.create(ctx, reg, users.RoleCustomer)
}

func (s *Store) create(ctx context.Context, reg users.Registration, role string) (users.User, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return users.User{}, fault.Internalf("user id: %w", err)
	}
	var taken bool
	if err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) IN (lower($1), lower($2)))`,
		reg.Email, spelled(reg.Spelled, reg.Email)).Scan(&taken); err != nil {
		return users.User{}, unavailable(err)
	}
	if taken {
		return users.User{}, users.ErrEmailTaken
	}
	hash, err := s.hash(ctx, reg.Password)
	if err != nil {
		return users.User{}, passwordErr("hash password", err)
	}
	var u users.User
	err = postgres.Tx(ctx, s.db, func(tx pgx.Tx) error {
		var err error
		u, err = scanUser(tx.QueryRow(ctx, `INSERT INTO users (id, email, name, role, password_hash)
			VALUES ($1, $2, $3, $4, $5) RETURNING `+userColumns, id, reg.Email, reg.Name, role, hash))
		if err != nil {
			return err
		}
		return outbox.Publish(ctx, tx, users.EventSource, events.UserRegistered, u.ID.String(), users.RegisteredEvent(u))
	})
	switch {
	case postgres.IsUniqueViolation(err, emailKey):
		return users.User{}, users.ErrEmailTaken
	case err != nil:
		return s.settle(ctx, id, err)
	}
	return u, nil
}

// settle answers a registration whose transaction failed with err: when
// its COMMIT's answer was lost and it committed after all
// (postgres.ReadSettled), the account it created, as a clean commit's answer
// (its event was written with it); otherwise fault.Unavailable.
func (s *Store) settle(ctx context.Context, id uuid.UUID, err error) (users.User, error) {
	var u users.User
	if err := postgres.ReadSettled(ctx, s.db, err, func(ctx context.Context) (rerr error) {
		u, rerr = scanUser(s.db.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
		return rerr
	}); err != nil {
		return users.User{}, unavailable(err)
	}
	return u, nil
}

// Authenticate returns the account whose email and password match login. An
// unknown email and a wrong password are the same users.ErrInvalidCredentials,
// and both cost one password-hash check (against auth.DummyHash for unknown
// emails), so neither the answer nor its timing tells whether an email is
// registered. The account is looked up by the composed email
// (users.ComposeEmail) and by login.Spelled, the address as sent: an account
// registered before emails were composed (2026-12-07) may be stored
// uncomposed, and when two accounts hold the two spellings, the one spelled
// as sent is checked. Database failures are fault.Unavailable.
func (s *Store) Authenticate(ctx context.Context, login users.Login) (users.User, error) {
	var hash string
	var u users.User
	sent := spelled(login.Spelled, login.Email)
	err := s.db.QueryRow(ctx, `SELECT `+userColumns+`, password_hash FROM users WHERE lower(email) IN ($1, $2)
		ORDER BY lower(email) = $2 DESC LIMIT 1`, login.Email, sent).
		Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.CreatedAt, &hash)
	found := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return users.User{}, unavailable(err)
	}
	if !found {
		hash = auth.DummyHash()
	}
	ok, err := auth.CheckPassword(ctx, hash, login.Password)
	if err != nil {
		return users.User{}, passwordErr("check password of "+u.ID.String(), err)
	}
	if !found || !ok || !login.Plausible() {
		return users.User{}, users.ErrInvalidCredentials
	}
	return u, nil
}

// spelled is an email as sent (a Registration's or Login's Spelled), or the
// composed one when none was given.
func spelled(sent, composed string) string {
	if sent == "" {
		return composed
	}
	return sent
}

// Get returns the account with id. An unknown (or deleted) account is
// fault.NotFound; database failures are fault.Unavailable.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (users.User, error) {
	u, err := scanUser(s.db.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return u, fault.E(fault.NotFound, fault.CodeNotFound, "no such user")
	}
	if err != nil {
		return u, unavailable(err)
	}
	return u, nil
}

// EnsureAdmin makes the account of reg an admin whose password is
// reg.Password, creating it (with its user.registered.v1 event) when no
// account uses the email. It is idempotent: when the account already is an
// admin with that password, nothing is written. It reports whether anything
// changed. The check and the update hold the row lock, so concurrent callers
// cannot lose an update.
//
// An account of the email that is not an admin is made one only when
// promote is set; otherwise EnsureAdmin refuses (fault.Conflict
// "email_taken"). Anyone can register an address before the seed runs, and
// adopting that account would make its registrant's tokens, still valid,
// tokens of the admin's account.
func (s *Store) EnsureAdmin(ctx context.Context, reg users.Registration, promote bool) (users.User, bool, error) {
	for attempt := 0; attempt < 2; attempt++ {
		u, changed, err := s.promote(ctx, reg, promote)
		if !errors.Is(err, errNoAccount) {
			return u, changed, err
		}
		u, err = s.create(ctx, reg, users.RoleAdmin)
		if errors.Is(err, users.ErrEmailTaken) {
			continue // created concurrently: promote it
		}
		return u, err == nil, err
	}
	return users.User{}, false, fault.Internalf("ensure admin: account keeps appearing and disappearing")
}

var errNoAccount = errors.New("no account with this email")

// passwordErr keeps what auth classified (its hash slots stayed busy: 503
// with Retry-After; the request ended while it waited: a timeout); any other
// failure to hash or check a password is a defect.
func passwordErr(what string, err error) error {
	if fault.Classified(err) {
		return err
	}
	return fault.Internalf("%s: %w", what, err)
}

// promote updates an existing account to admin with reg's password and name;
// errNoAccount when there is none. The account is looked up by both
// spellings of the email, as create refuses them (an account stored
// uncomposed before 2026-12-07 is found by reg.Spelled), and the one spelled
// as sent is preferred, as Authenticate does; until 2026-12-07 only the
// composed one was, and with only an uncomposed account EnsureAdmin went
// round between promote and create and failed as Internal. An account that
// is not an admin yet is refused unless customer is set (see EnsureAdmin).
func (s *Store) promote(ctx context.Context, reg users.Registration, customer bool) (users.User, bool, error) {
	var u users.User
	changed := false
	err := postgres.Tx(ctx, s.db, func(tx pgx.Tx) error {
		var hash string
		err := tx.QueryRow(ctx, `SELECT `+userColumns+`, password_hash FROM users WHERE lower(email) IN (lower($1), lower($2))
			ORDER BY lower(email) = lower($2) DESC LIMIT 1 FOR UPDATE`, reg.Email, spelled(reg.Spelled, reg.Email)).
			Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.CreatedAt, &hash)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNoAccount
		}
		if err != nil {
			return unavailable(err)
		}
		if u.Role != users.RoleAdmin && !customer {
			return fault.E(fault.Conflict, fault.CodeEmailTaken,
				"an account that is not an admin already uses this email: promote it deliberately, or name another email")
		}
		same, err := auth.CheckPassword(ctx, hash, reg.Password)
		if err != nil {
			if fault.Classified(err) { // a slot's wait failed, not the hash
				return err
			}
			same = false // an unreadable hash is replaced
		}
		if same && u.Role == users.RoleAdmin && u.Name == reg.Name {
			return nil
		}
		if !same {
			if hash, err = auth.HashPassword(ctx, reg.Password); err != nil {
				return passwordErr("hash password", err)
			}
		}
		u, err = scanUser(tx.QueryRow(ctx, `UPDATE users SET role = $2, name = $3, password_hash = $4, updated_at = now()
			WHERE id = $1 RETURNING `+userColumns, u.ID, users.RoleAdmin, reg.Name, hash))
		if err != nil {
			return unavailable(err)
		}
		changed = true
		return nil
	})
	if err != nil && !errors.Is(err, errNoAccount) && !fault.Classified(err) {
		return u, false, unavailable(err) // begin or commit failed
	}
	return u, changed, err
}

// PendingEvent is one unpublished row of the outbox, for tests and diagnostics.
type PendingEvent struct {
	Type     string
	Subject  string
	Envelope events.Envelope
}

// PendingEvents returns the unpublished outbox rows in the order they were
// written. The relay reads the outbox itself; this is for tests and for
// operators checking the lag.
func (s *Store) PendingEvents(ctx context.Context) ([]PendingEvent, error) {
	rows, err := s.db.Query(ctx, `SELECT type, subject, envelope FROM outbox WHERE published_at IS NULL ORDER BY seq`)
	if err != nil {
		return nil, unavailable(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (PendingEvent, error) {
		var o PendingEvent
		err := row.Scan(&o.Type, &o.Subject, &o.Envelope)
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", unavailable(err))
	}
	return out, nil
}
