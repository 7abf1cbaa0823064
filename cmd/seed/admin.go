package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/users"
	"github.com/shopfaas/shop/internal/users/usersdb"
)

// Development defaults of the admin secrets (README.md); production has none and
// refuses to seed without the secret files.
const (
	devAdminEmail    = "admin@example.com"
	devAdminPassword = "admin-dev-password"
)

// seedAdmin makes the account named by the admin-email secret an admin with
// the admin-password secret as its password, creating it when missing. It
// reads USERS_DATABASE_URL, DATABASE_CREATE, the optional db-password-users secret,
// ADMIN_NAME (default Administrator) and ADMIN_PROMOTE (default false: an
// existing account of the email that is not an admin is refused, not
// adopted; see usersdb.Store.EnsureAdmin). It never logs the email or
// password.
func seedAdmin(ctx context.Context, getenv func(string) string, log *slog.Logger) error {
	c := config.New(getenv)
	dev := c.Dev()
	email := c.Secret("admin-email", devAdminEmail, dev)
	password := c.Secret("admin-password", devAdminPassword, dev)
	name := c.String("ADMIN_NAME", "Administrator")
	promote := c.Bool("ADMIN_PROMOTE", false)
	dbCfg := postgres.ConfigFrom(c, "users", usersdb.Migrations())
	dbCfg.Log = log
	dbCfg.MaxConns = 1
	if err := c.Err(); err != nil {
		return err
	}
	reg, err := users.NewRegistration(email, password, name)
	if err != nil {
		return fmt.Errorf("admin-email / admin-password / ADMIN_NAME: %w", err)
	}
	pool, err := postgres.Open(ctx, dbCfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	u, changed, err := usersdb.New(pool).EnsureAdmin(ctx, reg, promote)
	if fault.Is(err, fault.Conflict, fault.CodeEmailTaken) {
		return fmt.Errorf("admin-email names an account that is not an admin: set ADMIN_PROMOTE=true to make it the admin "+
			"(its password becomes admin-password), or name another email: %w", err)
	}
	if err != nil {
		return err
	}
	log.Info("admin ready", "user_id", u.ID.String(), "changed", changed)
	return nil
}
