package main

import (
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/routes"
)

// The functions that open a service database as its readers do
// (catalogenv/inventoryenv Needs.Reader: given <SERVICE>_READER_DATABASE_URL
// they no longer ask for the writers' URL, and in production they log in
// as a role that can write nothing) are exactly the anonymous GET routes of
// internal/routes that open a database. A writer given Needs.Reader would
// build here, on a developer machine where every process logs in as
// postgres, and fail only in production, where its writes are refused; a
// public reader without it would log in as the database's owner.
func TestTheReadersAreExactlyTheAnonymousGetRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every function against PostgreSQL and Redis; -short was asked for")
	}
	fns, _ := devFunctions(t) // TestEveryFunctionBuildsWithOnlyTheSecretsItDeclares reports what the registry lacks
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var readers, anonymousGets []string
	for _, f := range fns {
		// A build that fails in full (a writer given Needs.Reader, which
		// catalogenv and inventoryenv refuse) would look like one that
		// opens no database below.
		if err := buildWith(f.build, f.name, maps.Clone(f.env), f.fn.Secrets, log); err != nil {
			t.Errorf("%s does not build in the development environment: %v", f.name, err)
			continue
		}
		opens := false
		for _, service := range databaseServices {
			v := strings.ToUpper(service) + "_DATABASE_URL"
			env := maps.Clone(f.env)
			delete(env, v)
			if err := buildWith(f.build, f.name, env, f.fn.Secrets, log); err == nil || !strings.Contains(err.Error(), v) {
				continue // it does not open this database
			}
			opens = true
			env[postgres.ReaderURLVar(service)] = f.env[v]
			if err := buildWith(f.build, f.name, env, f.fn.Secrets, log); err == nil || !strings.Contains(err.Error(), v) {
				readers = append(readers, f.name)
			}
		}
		if r, ok := routes.Lookup(f.name); ok && opens && r.Kind == routes.Public && r.Method == "GET" && r.Access == routes.Anyone {
			anonymousGets = append(anonymousGets, f.name)
		}
	}
	slices.Sort(readers)
	slices.Sort(anonymousGets)
	if len(anonymousGets) == 0 {
		t.Fatal("no anonymous GET route opens a database: the test saw no function build")
	}
	if diff := cmp.Diff(anonymousGets, readers); diff != "" {
		t.Errorf("the functions built as readers vs the anonymous GET routes that open a database (-routes +readers):\n%s", diff)
	}
}
