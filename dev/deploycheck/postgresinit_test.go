package deploycheck

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/dev/stackfile"
	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/notifications/notificationsdb"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
	"github.com/shopfaas/shop/internal/outbox"
	"github.com/shopfaas/shop/internal/payments/paymentsdb"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgserver"
	"github.com/shopfaas/shop/internal/relay"
	"github.com/shopfaas/shop/internal/search"
	"github.com/shopfaas/shop/internal/search/pgsearch"
	"github.com/shopfaas/shop/internal/users/usersdb"
)

// serviceMigrations are the migrations of each service database, which its
// functions apply at start as the service's role.
var serviceMigrations = map[string]func() fs.FS{
	"users": usersdb.Migrations, "catalog": catalogdb.Migrations, "orders": ordersdb.Migrations,
	"inventory": inventorydb.Migrations, "payments": paymentsdb.Migrations,
}

// privateCluster is a PostgreSQL cluster of the test's own (a copy of the
// test binary's clusterTemplate in a temporary directory, its own port on
// 127.0.0.1, internal/postgres/pgserver): 10-shop.sh creates roles, which
// belong to the whole cluster, and the databases shop_users, …, so it
// cannot run on the machine's server that other tests and `make run` share.
// The superuser postgres is trusted on the Unix socket in dir (where
// 10-shop.sh's psql connects); every TCP login needs its password
// (scram-sha-256), as on faasd. As root, the server runs as the postgres
// user (initdb refuses root). Its postmaster is the test process's child,
// so it dies with a test binary killed by its timeout or SIGKILL, and its
// backends follow (pgserver's TestAServerDiesWithTheProcessThatStartedIt).
type privateCluster struct {
	dir  string
	port int
}

// clusterTemplate is the data directory every privateCluster starts as a
// copy of: initdb, which takes seconds, runs once per test binary, when
// the first test needs it; TestMain removes it, when the tests end: a test
// binary that panics or is killed by its -timeout leaves it in the
// temporary directory (pg-init-template-*), as nothing runs after that.
var clusterTemplate struct {
	once      sync.Once
	dir       string // holds data; removed by TestMain
	bin, data string // PostgreSQL's server binaries, the data directory
	err       error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if clusterTemplate.dir != "" {
		_ = os.RemoveAll(clusterTemplate.dir)
	}
	os.Exit(code)
}

// templateData makes clusterTemplate the first time it is called: a
// cluster as initdb leaves it, and the pg_hba.conf privateCluster says.
func templateData(t *testing.T) (bin, data string) {
	t.Helper()
	ct := &clusterTemplate
	ct.once.Do(func() {
		if ct.bin, ct.err = pgserver.BinDir(); ct.err != nil {
			return
		}
		if ct.dir, ct.err = os.MkdirTemp("", "pg-init-template-"); ct.err != nil {
			return
		}
		if ct.err = pgserver.Chown(ct.dir); ct.err != nil {
			return
		}
		data := filepath.Join(ct.dir, "data")
		if ct.err = pgserver.Run(context.Background(), ct.bin, ct.dir, "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); ct.err != nil {
			return
		}
		hba := "local all postgres trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
		if ct.err = os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); ct.err != nil {
			return
		}
		if ct.err = pgserver.Chown(filepath.Join(data, "pg_hba.conf")); ct.err != nil {
			return
		}
		ct.data = data
	})
	if ct.err != nil {
		t.Fatalf("the clusters' template: %v", ct.err)
	}
	return ct.bin, ct.data
}

func startPrivateCluster(t *testing.T, settings ...string) privateCluster {
	t.Helper()
	bin, template := templateData(t)
	dir, err := os.MkdirTemp("", "pg-init-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := pgserver.Chown(dir); err != nil {
		t.Fatal(err)
	}
	// cp -a keeps each file's owner (the postgres user, as root) and mode.
	data := filepath.Join(dir, "data")
	if out, err := exec.Command("cp", "-a", template, data).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", template, data, err, out)
	}
	c := privateCluster{dir: dir, port: freePort(t)}
	server, err := pgserver.Start(context.Background(), pgserver.Config{Bin: bin, Data: data, SocketDir: dir, Port: c.port,
		Log: filepath.Join(dir, "server.log"), Settings: append([]string{"fsync=off"}, settings...), StartTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := server.Stop(syscall.SIGQUIT, time.Minute); err != nil {
			t.Errorf("stopping the private cluster: %v", err)
		}
	})
	return c
}

// url is the TCP URL of database as user with password.
func (c privateCluster) url(user, password, database string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: "127.0.0.1:" + strconv.Itoa(c.port),
		Path: "/" + database, RawQuery: "sslmode=disable&connect_timeout=10"}
	return u.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// denied reports whether err is PostgreSQL's insufficient_privilege: a
// login refused by the database's CONNECT privilege, or a statement by a
// table's privileges.
func denied(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501"
}

// readOnlyRefused tells whether err is PostgreSQL's refusal of a write in a
// read-only transaction (read_only_sql_transaction).
func readOnlyRefused(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "25006"
}

// psql runs the SQL script on database as the superuser, over the cluster's
// Unix socket.
func (c privateCluster) psql(t *testing.T, database, script string) {
	t.Helper()
	cmd := exec.Command("psql", "-v", "ON_ERROR_STOP=1", "-X", "-q", "--username", "postgres", "--dbname", database)
	cmd.Env = append(os.Environ(), "PGHOST="+c.dir, "PGPORT="+strconv.Itoa(c.port))
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("psql %s: %v\n%s", database, err, out)
	}
}

// query runs one query on database as the superuser, over the cluster's
// Unix socket, and returns its rows unaligned, one a line.
func (c privateCluster) query(t *testing.T, database, q string) string {
	t.Helper()
	cmd := exec.Command("psql", "-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t", "--username", "postgres", "--dbname", database, "-c", q)
	cmd.Env = append(os.Environ(), "PGHOST="+c.dir, "PGPORT="+strconv.Itoa(c.port))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("psql %s: %s: %v", database, q, err)
	}
	return string(out)
}

// runScript runs a script of env/faasd as the postgres image runs its init
// scripts: the superuser's psql on the socket, the secret files in secrets.
func (c privateCluster) runScript(t *testing.T, rel, secrets string) {
	t.Helper()
	c.runScriptAs(t, rel, secrets, "postgres", "")
}

// runScriptAs runs a script of env/faasd as user: the superuser postgres
// over the Unix socket, any other user over TCP with its password, as an
// administrator of a managed PostgreSQL runs it (docs/deploy-kubernetes.md).
func (c privateCluster) runScriptAs(t *testing.T, rel, secrets, user, password string, env ...string) {
	t.Helper()
	if out, err := c.scriptOutput(t, rel, secrets, user, password, env...); err != nil {
		t.Fatalf("%s as %s: %v\n%s", rel, user, err, out)
	}
}

// scriptOutput runs a script of env/faasd as runScriptAs does, with env
// added to its environment, and returns its output and how it ended.
func (c privateCluster) scriptOutput(t *testing.T, rel, secrets, user, password string, env ...string) ([]byte, error) {
	t.Helper()
	return c.scriptCommand(t, rel, secrets, user, password, env...).CombinedOutput()
}

// scriptCommand is the command of scriptOutput, not started.
func (c privateCluster) scriptCommand(t *testing.T, rel, secrets, user, password string, env ...string) *exec.Cmd {
	t.Helper()
	host := c.dir
	if user != "postgres" {
		host = "127.0.0.1"
	}
	cmd := exec.Command("/bin/sh", filepath.Join(root(t), rel))
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "POSTGRES_USER=" + user, "PGHOST=" + host, "PGPORT=" + strconv.Itoa(c.port),
		"PGPASSWORD=" + password, "SHOP_SECRETS_DIR=" + secrets}, env...)
	return cmd
}

// layout is what 10-shop.sh and the migrations decide in a cluster, but the
// password hashes (a password set again gets a new salt): the roles and
// their attributes, who is a member of which, each database's owner and
// privileges, and in each service database the schemas', tables' and
// columns' owners and privileges, the extensions, and the privileges of
// pg_catalog's functions that differ from the default (the large-object
// and advisory-lock functions the scripts revoke in every service
// database).
func (c privateCluster) layout(t *testing.T) string {
	t.Helper()
	l := c.query(t, "postgres", `SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolconnlimit, rolvaliduntil
		FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY 1`)
	l += c.query(t, "postgres", `SELECT m.roleid::regrole, m.member::regrole, m.admin_option FROM pg_auth_members m ORDER BY 1, 2`)
	l += c.query(t, "postgres", `SELECT datname, datdba::regrole, datacl FROM pg_database ORDER BY 1`)
	for _, service := range slices.Sorted(maps.Keys(serviceMigrations)) {
		db := "shop_" + service
		l += db + "\n" + c.query(t, db, `SELECT nspname, nspowner::regrole, nspacl FROM pg_namespace ORDER BY 1`)
		l += c.query(t, db, `SELECT relname, relowner::regrole, relacl FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1`)
		l += c.query(t, db, `SELECT attrelid::regclass, attname, attacl FROM pg_attribute WHERE attacl IS NOT NULL ORDER BY 1, 2`)
		l += c.query(t, db, `SELECT extname, extowner::regrole, extversion FROM pg_extension ORDER BY 1`)
		l += c.query(t, db, `SELECT oid::regprocedure, proacl FROM pg_proc
			WHERE pronamespace = 'pg_catalog'::regnamespace AND proacl IS NOT NULL ORDER BY 1`)
	}
	return l
}

// passwordHashes lists each role's password hash (pg_authid, the
// superuser's to read): setting a password again, even the same one, makes
// a new SCRAM salt and so a new hash.
const passwordHashes = `SELECT rolname || '|' || coalesce(rolpassword, '') FROM pg_authid WHERE rolname !~ '^pg_' ORDER BY 1`

// databaseSecrets writes the secret files the postgres service mounts, each
// password distinct, and returns their folder and the passwords by file.
func databaseSecrets(t *testing.T) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	// No password is the start of another (pw-catalog was of
	// pw-catalog-reader): passwordWatch looks for each one's start, which
	// then tells the roles apart.
	passwords := map[string]string{"postgres-monitor-password": "pw-monitor"}
	for _, s := range append(slices.Sorted(maps.Keys(serviceMigrations)), "relay") {
		passwords["db-password-"+s] = "pw-own-" + s
	}
	for _, s := range readerServices {
		passwords[postgres.ReaderPasswordSecret(s)] = "pw-reader-" + s
	}
	// What a shell or psql would read otherwise (the scripts hand the
	// passwords to psql as a quoted \set): a quote, a backslash, a psql
	// variable, a command substitution, psql's escapes (\n, octal, hex) and
	// a doubled quote inside the value, and a final backslash.
	passwords["db-password-users"] = `pw-own-users'\:p"$(x)` + "`id`" + `\n\101\x41''\`
	for name, pw := range passwords {
		for other, o := range passwords {
			if other != name && strings.HasPrefix(o, pw) {
				t.Fatalf("the password of %s starts with that of %s", other, name)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(pw+"\n"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, passwords
}

// migrate applies each service's migrations to its database as user with
// password, as a function does at start.
func (c privateCluster) migrate(t *testing.T, user func(service string) (string, string)) {
	t.Helper()
	for service, migrations := range serviceMigrations {
		name, password := user(service)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		pool, err := postgres.Open(ctx, postgres.Config{URL: c.url(name, "", "shop_"+service), Password: password,
			MaxConns: 1, Migrations: migrations()})
		cancel()
		if err != nil {
			t.Fatalf("migrating shop_%s as %s: %v", service, name, err)
		}
		pool.Close()
	}
}

// productionRoles are the users of env/production.yml's database URLs, by
// service: each must be the service's own role, shop_<service>.
func productionRoles(t *testing.T) map[string]string {
	t.Helper()
	var prod struct {
		Environment map[string]string `yaml:"environment"`
	}
	if err := yaml.Unmarshal(read(t, "env/production.yml"), &prod); err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for service := range serviceMigrations {
		u, err := url.Parse(prod.Environment[strings.ToUpper(service)+"_DATABASE_URL"])
		if err != nil || u.User.Username() != "shop_"+service || u.Path != "/shop_"+service {
			t.Fatalf("env/production.yml's %s database URL %v (%v): want the user shop_%s, the database shop_%s", service, u, err, service, service)
		}
		roles[service] = u.User.Username()
	}
	return roles
}

// productionReaderRole is the user of env/production.yml's readers' URL of
// service (postgres.ReaderURLVar), which must name the service's database.
func productionReaderRole(t *testing.T, service string) string {
	t.Helper()
	var prod struct {
		Environment map[string]string `yaml:"environment"`
	}
	if err := yaml.Unmarshal(read(t, "env/production.yml"), &prod); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(prod.Environment[postgres.ReaderURLVar(service)])
	if err != nil || u.Path != "/shop_"+service || u.User == nil {
		t.Errorf("env/production.yml's %s %v (%v): want the URL of the database shop_%s", postgres.ReaderURLVar(service), u, err, service)
		return ""
	}
	return u.User.Username()
}

// 10-shop.sh, run by the superuser on a new cluster as the postgres image
// runs it, leaves each function of stack.yml able to reach, with the
// database passwords it declares (and the user of env/production.yml's
// URL), its own service's database and no other: every other service
// database refuses the login (permission denied for database), as it does
// shop_monitor's. So get-stock's secret cannot make a user an admin in
// shop_users, nor write an order.placed.v1 into shop_orders' outbox. The
// relay's role, shop_relay, once each database was migrated as its
// service's role (as the functions do at start), reads, marks and prunes
// every outbox (and the inbox and notifications it prunes), and can neither
// write an outbox row (the relay signs whatever it reads) nor read or write
// a business table.
func TestEachFunctionReachesOnlyItsServicesDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own; -short was asked for")
	}
	cl := startPrivateCluster(t)
	secrets, passwords := databaseSecrets(t)
	cl.runScript(t, "env/faasd/postgres-init/10-shop.sh", secrets)
	roles := productionRoles(t)
	cl.migrate(t, func(service string) (string, string) {
		return roles[service], passwords[postgres.PasswordSecret(service)]
	})
	checkDatabaseRoles(t, cl, passwords, roles, true)
}

// On Kubernetes 10-shop.sh runs against a managed PostgreSQL
// (docs/deploy-kubernetes.md), where an operator may run it again (a step
// repeated, a run that stopped half-way) and whose administrator is often
// not a superuser, only CREATEROLE and CREATEDB. Run by such an
// administrator, it leaves what it leaves when the superuser runs it
// (TestEachFunctionReachesOnlyItsServicesDatabase's checks), but the
// privileges of pg_catalog's functions, which only a superuser may change:
// the relay's and the readers' roles may still create large objects and
// take advisory locks in every service database, and the script says so,
// once for each, nor close postgres and template1 to the readers' roles
// or limit their temporary files and the relay's, which it says once (and,
// run by such an administrator after the superuser, it and split-roles.sh
// say only what still holds: rerunWithoutASuperuser); run again, by the
// superuser or by
// that administrator, after the functions migrated the databases, it keeps
// the passwords as checkPasswordsKept says. The superuser's first run, with
// every statement of it logged (passwordWatch), logs no password; the
// administrator's logs them, as it may not turn that logging off, and says
// so once; granted SET on those parameters (PostgreSQL 15's GRANT SET ON
// PARAMETER), its reruns log none.
func TestThePostgresInitScriptRunsAgainAndWithoutASuperuser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own; -short was asked for")
	}
	for _, admin := range []string{"postgres", "shop_admin"} {
		t.Run(admin, func(t *testing.T) {
			cl := startPrivateCluster(t, pgStatStatementsLoaded)
			secrets, passwords := databaseSecrets(t)
			password := ""
			if admin != "postgres" {
				password = "pw-admin"
				cl.psql(t, "postgres", "CREATE ROLE "+admin+" LOGIN CREATEROLE CREATEDB PASSWORD '"+password+"';\n")
			}
			watch := cl.watchPasswords(t, admin, secrets)
			out, err := cl.scriptOutput(t, "env/faasd/postgres-init/10-shop.sh", secrets, admin, password, watch.env...)
			if err != nil {
				t.Fatalf("10-shop.sh as %s: %v\n%s", admin, err, out)
			}
			superuser := admin == "postgres"
			// The superuser turns the statement logging off for the
			// statements that set the passwords; an administrator that
			// may not sets them logged, and says so once, without them.
			if got, want := strings.Count(string(out), passwordsMayBeLogged("10-shop.sh")), map[bool]int{true: 0, false: 1}[superuser]; got != want {
				t.Errorf("10-shop.sh as %s: warned %d times that the passwords may be logged, want %d\n%s", admin, got, want, out)
			}
			for file, p := range watch.passwords {
				if strings.Contains(string(out), p) {
					t.Errorf("10-shop.sh as %s printed the password of %s\n%s", admin, file, out)
				}
			}
			if superuser {
				log := watch.noneSent(t, "10-shop.sh as "+admin, roleCheck, quieted, afterThePasswords)
				rolesChecked(t, "10-shop.sh as "+admin, log, len(initRoles()))
			} else {
				watch.sentInStatementsOnly(t, "10-shop.sh as "+admin, initRoles())
				// PostgreSQL 15 lets the superuser grant it those
				// parameters: it then sets the passwords unlogged too
				// (checkPasswordsKept).
				cl.psql(t, "postgres", "GRANT SET ON PARAMETER log_statement, log_min_duration_statement, log_min_duration_sample, "+
					"log_transaction_sample_rate, log_min_error_statement, track_activities, pg_stat_statements.track_utility TO "+admin+";\n")
			}
			for service := range serviceMigrations {
				warning := "10-shop.sh: not a superuser, so in shop_" + service + " every role that may connect (shop_relay among them) can still create large objects"
				if got := strings.Contains(string(out), warning); got == superuser {
					t.Errorf("10-shop.sh as %s: warned %q %v, want %v\n%s", admin, warning, got, !superuser, out)
				}
			}
			// PostgreSQL's defaults: PUBLIC may connect to postgres and
			// template1 but create temporary tables in postgres alone
			// (initdb leaves template1 "=c/postgres").
			want := ""
			if !superuser {
				want = "10-shop.sh: not a superuser, so the reader roles can still connect to postgres and template1 " +
					"(and create large objects there, and temporary tables in postgres), and shop_relay and the reader roles " +
					"can still spill temporary files without a limit (docs/security.md, Database roles)"
			}
			if got := outsideWarning(out, "10-shop.sh"); got != want {
				t.Errorf("10-shop.sh as %s: warned of postgres, template1 and temporary files %q, want %q\n%s", admin, got, want, out)
			}
			roles := productionRoles(t)
			cl.migrate(t, func(service string) (string, string) {
				return roles[service], passwords[postgres.PasswordSecret(service)]
			})
			if superuser {
				// A role's own setting in one database overrides its
				// 1GB there: the superuser's rerun resets one that lifts
				// it (-1, however spelled: PostgreSQL stores '-1kB' as
				// written), so checkDatabaseRoles sees 1GB there (until
				// 2026-12-06 it stayed, and -1 was seen; until the review
				// of that day '-1kB' stayed).
				cl.psql(t, "postgres", "ALTER ROLE shop_inventory_reader IN DATABASE shop_inventory SET temp_file_limit = -1;\n"+
					"ALTER ROLE shop_relay IN DATABASE shop_payments SET temp_file_limit = '-1kB';\n")
			}
			cl.checkPasswordsKept(t, "env/faasd/postgres-init/10-shop.sh", secrets, admin, password, initRoles())
			checkDatabaseRoles(t, cl, passwords, roles, superuser)
			if superuser {
				rerunWithoutASuperuser(t, cl, secrets)
			}
		})
	}
}

// rerunWithoutASuperuser runs 10-shop.sh, and then split-roles.sh, as an
// administrator that is not a superuser on cl, where the superuser ran
// 10-shop.sh: each warns of the large objects and advisory locks only in
// the service databases where PUBLIC may still execute one of those
// functions, here shop_orders alone, where lo_create was granted to PUBLIC
// again after the superuser's run (an explicit entry for PUBLIC, where a
// fresh cluster has PostgreSQL's default, no ACL at all: the shop_admin
// case of TestThePostgresInitScriptRunsAgainAndWithoutASuperuser), and of
// postgres, template1 and the temporary files not at all (the superuser
// closed them); then, a part of that put back, of that part alone: PUBLIC's
// CONNECT on template1 (the readers may connect there again, but not create
// temporary tables: TEMPORARY stays revoked), then, that revoked again,
// the limit of one readers' role (10-shop.sh), and then both, the relay's
// limit too (split-roles.sh); neither warns that passwords may be logged,
// as they set none, but split-roles.sh run by it with
// SHOP_RESET_PASSWORDS=true does, once.
func rerunWithoutASuperuser(t *testing.T, cl privateCluster, secrets string) {
	t.Helper()
	cl.psql(t, "postgres", "CREATE ROLE shop_admin LOGIN CREATEROLE CREATEDB PASSWORD 'pw-admin';\n"+
		"GRANT CONNECT ON DATABASE postgres TO shop_admin;\n")
	cl.psql(t, "shop_orders", "GRANT EXECUTE ON FUNCTION lo_create(oid) TO PUBLIC;\n")
	// 10-shop.sh first: it makes shop_admin a member of the service roles,
	// which split-roles.sh needs (ALTER DATABASE ... OWNER).
	for _, script := range []string{"env/faasd/postgres-init/10-shop.sh", "env/faasd/postgres-upgrade/split-roles.sh"} {
		name := filepath.Base(script)
		out, err := cl.scriptOutput(t, script, secrets, "shop_admin", "pw-admin")
		if err != nil {
			t.Fatalf("%s run as shop_admin after the superuser: %v\n%s", name, err, out)
		}
		for service := range serviceMigrations {
			warning := name + ": not a superuser, so in shop_" + service + " every role that may connect (shop_relay among them) can still create large objects"
			if got, want := strings.Contains(string(out), warning), service == "orders"; got != want {
				t.Errorf("%s run as shop_admin after the superuser: warned %q %v, want %v\n%s", name, warning, got, want, out)
			}
		}
		if got := outsideWarning(out, name); got != "" {
			t.Errorf("%s run as shop_admin after the superuser: warned %q, want no warning of postgres, template1 or temporary files\n%s", name, got, out)
		}
		if strings.Contains(string(out), passwordsMayBeLogged(name)) {
			t.Errorf("%s run as shop_admin after the superuser, setting no password, warned that passwords may be logged\n%s", name, out)
		}
	}

	for _, step := range []struct{ put, script, want string }{
		{"GRANT CONNECT ON DATABASE template1 TO PUBLIC;\n", "env/faasd/postgres-init/10-shop.sh",
			"10-shop.sh: not a superuser, so the reader roles can still connect to template1 (and create large objects there)"},
		// -1 written in another unit, stored as written: a lift all the
		// same (until the review of 2026-12-06 only '-1' was seen).
		{"REVOKE CONNECT ON DATABASE template1 FROM PUBLIC;\nALTER ROLE shop_inventory_reader SET temp_file_limit = '-1kB';\n", "env/faasd/postgres-init/10-shop.sh",
			"10-shop.sh: not a superuser, so shop_inventory_reader can still spill temporary files without a limit"},
		{"GRANT CONNECT ON DATABASE template1 TO PUBLIC;\nALTER ROLE shop_relay RESET temp_file_limit;\n", "env/faasd/postgres-upgrade/split-roles.sh",
			"split-roles.sh: not a superuser, so the reader roles can still connect to template1 (and create large objects there), " +
				"and shop_relay and shop_inventory_reader can still spill temporary files without a limit"},
		// Limited again for every database, but a role's own setting in
		// one database overrides it there: -1 lifts it in that one alone
		// (until 2026-12-06 the scripts read only the setting for every
		// database, and said nothing); another value is a limit still.
		{"REVOKE CONNECT ON DATABASE template1 FROM PUBLIC;\nALTER ROLE shop_relay SET temp_file_limit = '1GB';\n" +
			"ALTER ROLE shop_inventory_reader SET temp_file_limit = '1GB';\n" +
			"ALTER ROLE shop_relay IN DATABASE shop_orders SET temp_file_limit = -1;\n" +
			"ALTER ROLE shop_relay IN DATABASE shop_users SET temp_file_limit = '-1024B';\n", "env/faasd/postgres-init/10-shop.sh",
			"10-shop.sh: not a superuser, so shop_relay can still spill temporary files without a limit in shop_orders and shop_users"},
		// '-0', '-0.4', '-0.0004GB' and '-0.0000004TB' are 0 to
		// PostgreSQL, the strictest limit: not warned of (until a review
		// of 2026-12-06 any negative spelling was, and until a later one
		// the GB and TB spellings, their number times their unit below
		// -0.5 kB, though PostgreSQL rounds them to whole MB and GB first).
		{"ALTER ROLE shop_catalog_reader IN DATABASE shop_catalog SET temp_file_limit = -1;\n" +
			"ALTER ROLE shop_inventory_reader IN DATABASE shop_inventory SET temp_file_limit = '2GB';\n" +
			"ALTER ROLE shop_inventory_reader IN DATABASE shop_orders SET temp_file_limit = '-0';\n" +
			"ALTER ROLE shop_inventory_reader IN DATABASE shop_users SET temp_file_limit = '-0.0004GB';\n" +
			"ALTER ROLE shop_catalog_reader IN DATABASE shop_orders SET temp_file_limit = '-0.0000004TB';\n" +
			"ALTER ROLE shop_catalog_reader IN DATABASE shop_users SET temp_file_limit = '-0.4';\n", "env/faasd/postgres-upgrade/split-roles.sh",
			"split-roles.sh: not a superuser, so shop_catalog_reader can still spill temporary files without a limit in shop_catalog, " +
				"and shop_relay can still spill temporary files without a limit in shop_orders and shop_users"},
	} {
		cl.psql(t, "postgres", step.put)
		out, err := cl.scriptOutput(t, step.script, secrets, "shop_admin", "pw-admin")
		if err != nil {
			t.Fatalf("%s run as shop_admin after %q: %v\n%s", step.script, step.put, err, out)
		}
		if got, want := outsideWarning(out, filepath.Base(step.script)), step.want+" (docs/security.md, Database roles)"; got != want {
			t.Errorf("%s run as shop_admin after %q: warned %q, want %q\n%s", step.script, step.put, got, want, out)
		}
	}

	// split-roles.sh resetting the passwords as shop_admin, which may not
	// turn the statement logging off: it sets them logged and says so
	// once, without them.
	watch := cl.watchPasswords(t, "shop_admin", secrets)
	out, err := cl.scriptOutput(t, "env/faasd/postgres-upgrade/split-roles.sh", secrets, "shop_admin", "pw-admin", append(watch.env, "SHOP_RESET_PASSWORDS=true")...)
	if err != nil {
		t.Fatalf("split-roles.sh with SHOP_RESET_PASSWORDS=true as shop_admin: %v\n%s", err, out)
	}
	if got := strings.Count(string(out), passwordsMayBeLogged("split-roles.sh")); got != 1 {
		t.Errorf("split-roles.sh with SHOP_RESET_PASSWORDS=true as shop_admin: warned %d times that the passwords may be logged, want once\n%s", got, out)
	}
	for file, p := range watch.passwords {
		if strings.Contains(string(out), p) {
			t.Errorf("split-roles.sh with SHOP_RESET_PASSWORDS=true as shop_admin printed the password of %s\n%s", file, out)
		}
	}
	watch.sentInStatementsOnly(t, "split-roles.sh with SHOP_RESET_PASSWORDS=true as shop_admin", splitRoles())
}

// outsideWarning is the warning of script (10-shop.sh or split-roles.sh)
// in its output out about what, outside the service databases, only a
// superuser may close (the connections to postgres and template1, the
// temporary files without a limit), its lines joined, "" if none.
func outsideWarning(out []byte, script string) string {
	var warnings []string
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(line, script+": not a superuser, so ") && !strings.HasPrefix(line, script+": not a superuser, so in shop_") {
			warnings = append(warnings, line)
		}
	}
	return strings.Join(warnings, "\n")
}

// initRoles are the login roles 10-shop.sh makes, each with the password
// of a secret file.
func initRoles() []string {
	return append(splitRoles(), "shop_monitor")
}

// splitRoles are the login roles split-roles.sh makes: the services', the
// relay's and the readers'.
func splitRoles() []string {
	var roles []string
	for _, service := range slices.Sorted(maps.Keys(serviceMigrations)) {
		roles = append(roles, "shop_"+service)
	}
	roles = append(roles, "shop_relay")
	for _, service := range readerServices {
		roles = append(roles, readerRole(service))
	}
	return roles
}

// readerServices are the services whose public, unauthenticated readers
// log in as a read-only role of their own, readerRole(service), with the
// password of postgres.ReaderPasswordSecret(service).
var readerServices = []string{"catalog", "inventory"}

// readerRole is the read-only login role of service's public readers.
func readerRole(service string) string { return "shop_" + service + "_reader" }

// checkPasswordsKept runs script (10-shop.sh or split-roles.sh, which has
// run once on cl) again as user and checks what both promise of the
// passwords of roles, the login roles the script makes: a run without
// SHOP_RESET_PASSWORDS changes nothing, not even a password's hash
// (PgBouncer's auth_file holds the SCRAM secrets, a new salt breaks them,
// and a rerun with stale secret files must not reset the roles' passwords),
// and leaves a role made NOLOGIN by an operator so; any value of
// SHOP_RESET_PASSWORDS but true, false or none stops it before it changes
// anything; SHOP_RESET_PASSWORDS=true sets each password again from its
// file (a new hash) and lets a role made NOLOGIN log in again. No run puts
// a password in psql's arguments or in the server log, which logs every
// other statement of user (passwordWatch; user may turn that logging off:
// the superuser, or an administrator granted SET on its parameters), not
// even a run whose ALTER ROLE fails (cancelled while it waits for a lock),
// which the server logs without the statement; while it waits,
// pg_stat_activity shows no password; each run that sets the passwords
// checks each role in a logged statement (the logging set back after each
// password); and, on a cluster that loads it, pg_stat_statements keeps
// none.
func (c privateCluster) checkPasswordsKept(t *testing.T, script, secrets, user, password string, roles []string) {
	t.Helper()
	name := filepath.Base(script)
	watch := c.watchPasswords(t, user, secrets)
	pgss := strings.Contains(c.query(t, "postgres", "SHOW shared_preload_libraries"), "pg_stat_statements")
	if pgss {
		c.psql(t, "postgres", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;\nSELECT pg_stat_statements_reset();\n")
	}
	before, hashes := c.layout(t), c.query(t, "postgres", passwordHashes)
	c.runScriptAs(t, script, secrets, user, password, watch.env...)
	if diff := cmp.Diff(before, c.layout(t)); diff != "" {
		t.Errorf("%s run again as %s changed the cluster (-first run +second):\n%s", name, user, diff)
	}
	if diff := cmp.Diff(hashes, c.query(t, "postgres", passwordHashes)); diff != "" {
		t.Errorf("%s run again as %s set passwords again (-first run +second):\n%s", name, user, diff)
	}
	watch.noneSent(t, name+" run again as "+user, roleCheck)

	out, err := c.scriptOutput(t, script, secrets, user, password, append(watch.env, "SHOP_RESET_PASSWORDS=yes")...)
	if err == nil || !strings.Contains(string(out), "SHOP_RESET_PASSWORDS is true, false or unset, not yes") {
		t.Errorf("%s with SHOP_RESET_PASSWORDS=yes as %s: %v\n%s\nwant it stopped, naming the variable", name, user, err, out)
	}
	if diff := cmp.Diff(hashes, c.query(t, "postgres", passwordHashes)); diff != "" {
		t.Errorf("%s with SHOP_RESET_PASSWORDS=yes as %s set passwords (-before +after):\n%s", name, user, diff)
	}
	watch.noneSent(t, name+" with SHOP_RESET_PASSWORDS=yes as "+user)

	// An operator cut two roles off: a run that was not asked to reset
	// leaves them so.
	c.psql(t, "postgres", "ALTER ROLE shop_orders NOLOGIN;\nALTER ROLE shop_relay NOLOGIN;\n")
	canLogin := `SELECT rolname || '|' || rolcanlogin FROM pg_roles WHERE rolname IN ('shop_orders', 'shop_relay') ORDER BY 1`
	c.runScriptAs(t, script, secrets, user, password, watch.env...)
	if got := c.query(t, "postgres", canLogin); got != "shop_orders|false\nshop_relay|false\n" {
		t.Errorf("%s run again as %s without SHOP_RESET_PASSWORDS let a role made NOLOGIN log in:\n%s", name, user, got)
	}
	if diff := cmp.Diff(hashes, c.query(t, "postgres", passwordHashes)); diff != "" {
		t.Errorf("%s run again as %s set passwords again (-before +after):\n%s", name, user, diff)
	}
	watch.noneSent(t, name+" run again after NOLOGIN as "+user, roleCheck)

	// Asked to, it sets every password again, from the files, and lets
	// the roles made NOLOGIN log in again. Only the ALTER ROLE statements
	// carry the passwords, never psql's arguments, and the server logs
	// none of them.
	out, err = c.scriptOutput(t, script, secrets, user, password, append(watch.env, "SHOP_RESET_PASSWORDS=true")...)
	if err != nil {
		t.Fatalf("%s with SHOP_RESET_PASSWORDS=true as %s: %v\n%s", name, user, err, out)
	}
	if strings.Contains(string(out), passwordsMayBeLogged(name)) {
		t.Errorf("%s with SHOP_RESET_PASSWORDS=true as %s warned that the passwords may be logged\n%s", name, user, out)
	}
	want := []string{roleCheck, quieted}
	if name == "10-shop.sh" {
		want = append(want, afterThePasswords)
	}
	log := watch.noneSent(t, name+" with SHOP_RESET_PASSWORDS=true as "+user, want...)
	rolesChecked(t, name+" with SHOP_RESET_PASSWORDS=true as "+user, log, len(roles))
	if pgss {
		// What pg_stat_statements kept of the runs: the role checks, but
		// no statement that set a password.
		kept := c.query(t, "postgres", "SELECT query FROM pg_stat_statements")
		for file, p := range watch.passwords {
			if strings.Contains(kept, p) {
				t.Errorf("%s with SHOP_RESET_PASSWORDS=true as %s: pg_stat_statements kept the password of %s", name, user, file)
			}
		}
		if !strings.Contains(kept, "FROM pg_roles WHERE rolname") {
			t.Errorf("%s with SHOP_RESET_PASSWORDS=true as %s: pg_stat_statements kept no role check, want the runs' statements:\n%s", name, user, kept)
		}
	}
	after := map[string]string{}
	for _, line := range strings.Split(c.query(t, "postgres", passwordHashes), "\n") {
		role, hash, _ := strings.Cut(line, "|")
		after[role] = hash
	}
	for _, line := range strings.Split(hashes, "\n") {
		if role, hash, _ := strings.Cut(line, "|"); slices.Contains(roles, role) && after[role] == hash {
			t.Errorf("%s run with SHOP_RESET_PASSWORDS=true as %s left %s's password hash as it was", name, user, role)
		}
	}
	if got := c.query(t, "postgres", canLogin); got != "shop_orders|true\nshop_relay|true\n" {
		t.Errorf("%s run with SHOP_RESET_PASSWORDS=true as %s left a role NOLOGIN:\n%s", name, user, got)
	}

	// A statement that fails is logged with its text unless
	// log_min_error_statement says otherwise, and one that runs shows it in
	// pg_stat_activity (which a backend's crash, "Failed process was
	// running", and a deadlock's DETAIL in the other session write to the
	// log) unless track_activities is off: here the first ALTER ROLE waits
	// for pg_authid, which another session holds locked, a third reads
	// what pg_stat_activity shows of it and cancels it, which stops the
	// script.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	holder, err := pgx.Connect(ctx, "host="+c.dir+" port="+strconv.Itoa(c.port)+" user=postgres dbname=postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(context.Background())
	reader, err := pgx.Connect(ctx, "host="+c.dir+" port="+strconv.Itoa(c.port)+" user=postgres dbname=postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close(context.Background())
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, "LOCK pg_authid IN SHARE MODE"); err != nil {
		t.Fatal(err)
	}
	cmd := c.scriptCommand(t, script, secrets, user, password, append(watch.env, "SHOP_RESET_PASSWORDS=true", "PGOPTIONS=-c lock_timeout=1min")...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		out, err = cmd.CombinedOutput()
	}()
	var pid int
	var activity string
	for {
		qerr := reader.QueryRow(ctx, `SELECT pid, coalesce(query, '') FROM pg_stat_activity
			WHERE usename = $1 AND cardinality(pg_blocking_pids(pid)) > 0`, user).Scan(&pid, &activity)
		if qerr == nil {
			break
		}
		if !errors.Is(qerr, pgx.ErrNoRows) {
			t.Fatal(qerr)
		}
		select {
		case <-done:
			t.Fatalf("%s with SHOP_RESET_PASSWORDS=true as %s, pg_authid locked, ended without waiting for the lock: %v\n%s", name, user, err, out)
		case <-ctx.Done():
			t.Fatalf("%s with SHOP_RESET_PASSWORDS=true as %s, pg_authid locked: no session of its waits", name, user)
		case <-time.After(20 * time.Millisecond):
		}
	}
	for file, p := range watch.passwords {
		if strings.Contains(activity, p) {
			t.Errorf("%s with SHOP_RESET_PASSWORDS=true as %s: pg_stat_activity shows the password of %s in the statement that waits", name, user, file)
		}
	}
	if _, err := reader.Exec(ctx, "SELECT pg_cancel_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err == nil || !strings.Contains(string(out), "canceling statement due to user request") {
		t.Errorf("%s with SHOP_RESET_PASSWORDS=true as %s, pg_authid locked: %v\n%s\nwant it stopped by the cancel", name, user, err, out)
	}
	watch.noneSent(t, name+" with SHOP_RESET_PASSWORDS=true as "+user+", cancelled waiting for a lock", roleCheck, "ERROR:  canceling statement due to user request")
}

// passwordsMayBeLogged is the warning of script (10-shop.sh or
// split-roles.sh) run by an administrator that may not turn the server's
// statement logging off for the statements that set passwords.
func passwordsMayBeLogged(script string) string {
	return script + ": not allowed to SET log_statement, log_min_duration_statement, log_min_duration_sample, " +
		"log_transaction_sample_rate, log_min_error_statement and track_activities, so a server that logs statements may log the passwords " +
		"this run sets (docs/security.md, Database roles)"
}

// passwordWatch sees where a script's runs put the passwords of a secrets
// folder: the cluster's server log, with every statement of the script's
// user logged in every way an operator may ask for (logStatements), and
// the arguments of every psql the script runs (which any local user sees
// in ps), recorded by a psql of its own first on the script's PATH (env)
// that then runs the real one.
type passwordWatch struct {
	env       []string
	log, args string
	// offset is how much of log the last check read.
	offset int
	// passwords are the start of each password up to its first character
	// other than a letter, a digit, - or _, by file.
	passwords map[string]string
}

// logStatements are the settings, each a superuser's, that write a
// statement's text to the server log, each set so that it logs every
// statement: log_statement, the durations, the sampled durations and the
// sampled transactions (log_min_error_statement's default, error, logs
// the text of a statement that fails).
var logStatements = []string{"log_statement = 'all'", "log_min_duration_statement = 0", "log_min_duration_sample = 0",
	"log_statement_sample_rate = 1", "log_transaction_sample_rate = 1"}

// watchPasswords logs every statement of user on c from now on
// (logStatements) and returns the watch of the passwords in secrets.
func (c privateCluster) watchPasswords(t *testing.T, user, secrets string) *passwordWatch {
	t.Helper()
	var alter strings.Builder
	for _, set := range logStatements {
		alter.WriteString("ALTER ROLE " + user + " SET " + set + ";\n")
	}
	c.psql(t, "postgres", alter.String())
	real, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	w := &passwordWatch{env: []string{"PATH=" + bin + ":" + os.Getenv("PATH")}, log: filepath.Join(c.dir, "server.log"),
		args: filepath.Join(bin, "psql-args"), passwords: map[string]string{}}
	wrapper := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '" + w.args + "'\nexec '" + real + "' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "psql"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := os.ReadDir(secrets)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(secrets, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		// Its plain start: a statement or a log quotes the rest (a quote
		// doubled, a backslash perhaps too).
		p := strings.TrimSpace(string(b))
		if i := strings.IndexFunc(p, func(r rune) bool {
			return !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", r)
		}); i > 0 {
			p = p[:i]
		}
		w.passwords[f.Name()] = p
	}
	w.sent(t)
	return w
}

// sent returns the server log's lines and the psql arguments since the
// last call.
func (w *passwordWatch) sent(t *testing.T) (log, args string) {
	t.Helper()
	b, err := os.ReadFile(w.log)
	if err != nil {
		t.Fatal(err)
	}
	log, w.offset = string(b[w.offset:]), len(b)
	if b, err := os.ReadFile(w.args); err == nil {
		args = string(b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if err := os.Remove(w.args); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return log, args
}

// noneSent fails the test when a run since the last check put a password
// in the server log or in psql's arguments, or when the log does not hold
// each of want, statements the run sent (none for a run that stops before
// its first psql): the log holds the run's statements, so a password in
// one would be seen.
func (w *passwordWatch) noneSent(t *testing.T, run string, want ...string) string {
	t.Helper()
	log, args := w.sent(t)
	for file, p := range w.passwords {
		if strings.Contains(log, p) {
			t.Errorf("%s sent the password of %s to the server, which logged it", run, file)
		}
		if strings.Contains(args, p) {
			t.Errorf("%s put the password of %s in psql's arguments", run, file)
		}
	}
	for _, statement := range want {
		if !strings.Contains(log, statement) {
			t.Errorf("%s: %q not in the server log, want every statement logged but those that set a password:\n%s", run, statement, log)
		}
	}
	return log
}

// rolesChecked fails the test unless log, a run's server log, holds n of
// the scripts' role checks (roleCheck), one for each role: the later ones
// follow the statements that set the earlier ones' passwords, so a logging
// left off after them (no RESET) would hide them.
func rolesChecked(t *testing.T, run, log string, n int) {
	t.Helper()
	if got := strings.Count(log, roleCheck); got != n {
		t.Errorf("%s: %d role checks in the server log, want %d, one a role (the logging set back after each password):\n%s", run, got, n, log)
	}
}

// afterThePasswords is a statement 10-shop.sh sends in the session that
// set the passwords, after them: logged once the logging is set back.
const afterThePasswords = "statement: SELECT 'GRANT pg_monitor TO shop_monitor'"

// pgStatStatementsLoaded is the setting with which a private cluster loads
// pg_stat_statements (contrib), which keeps what statements a session
// sends unless pg_stat_statements.track_utility is off for it.
const pgStatStatementsLoaded = "shared_preload_libraries=pg_stat_statements"

// roleCheck is the start of the statement with which each script asks,
// for each role, whether it exists: the server logs it whether or not a
// password is set then.
const roleCheck = "statement: SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = 'shop_"

// quieted is the start of the statement with which the scripts turn the
// server's statement logging off for the statement that sets a password.
const quieted = "statement: SET log_statement = 'none'"

// sentInStatementsOnly fails the test when a run since the last check put
// a password in psql's arguments, or when the server did not log the
// password of each of roles: what a run by an administrator that may not
// turn the logging off does, and says (passwordsMayBeLogged).
func (w *passwordWatch) sentInStatementsOnly(t *testing.T, run string, roles []string) {
	t.Helper()
	log, args := w.sent(t)
	for file, p := range w.passwords {
		if strings.Contains(args, p) {
			t.Errorf("%s put the password of %s in psql's arguments", run, file)
		}
	}
	for _, role := range roles {
		file := roleSecret(role)
		if p, ok := w.passwords[file]; !ok || !strings.Contains(log, p) {
			t.Errorf("%s: %s's password (%s) not in the server log", run, role, file)
		}
	}
}

// roleSecret is the secret file that holds the password of role, one of
// the login roles the scripts make (initRoles).
func roleSecret(role string) string {
	if role == "shop_monitor" {
		return "postgres-monitor-password"
	}
	if service, ok := strings.CutSuffix(strings.TrimPrefix(role, "shop_"), "_reader"); ok {
		return postgres.ReaderPasswordSecret(service)
	}
	return "db-password-" + strings.TrimPrefix(role, "shop_")
}

// The runbook's commands that create shop_monitor on a cluster older than
// the role (docs/runbooks/datastores.md, "Upgrading") and set its password
// again once the secret changed: the script of its ctr … exec line, run as
// written (the secret file is the test's, the cluster too), makes a login
// role member of pg_monitor that logs in with the file's password, and its
// "changed secret" variant sets the new one; neither puts the password in
// psql's arguments or in the server log, which logs every statement of the
// superuser (passwordWatch). An empty file, or one with a CRLF line end,
// stops the script before psql and changes nothing.
func TestTheRunbooksMonitorRoleCommandsKeepThePasswordToPsql(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own; -short was asked for")
	}
	doc := string(read(t, "docs/runbooks/datastores.md"))
	m := regexp.MustCompile(`(?s)ctr -n openfaas task exec --exec-id monitor postgres sh -c '\n(.*?\n)'\n`).FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("docs/runbooks/datastores.md: no sh -c script in the ctr … exec line of Upgrading")
	}
	// A quote inside the single-quoted script is written '"'"'.
	unquote := func(s string) string { return strings.ReplaceAll(s, `'"'"'`, `'`) }
	create := unquote(m[1])
	a := regexp.MustCompile("with `(ALTER ROLE shop_monitor PASSWORD [^`]*)` in place of its `CREATE ROLE` line").FindStringSubmatch(doc)
	createLine := regexp.MustCompile(`(?m)^CREATE ROLE shop_monitor .*$`)
	if a == nil || !createLine.MatchString(create) {
		t.Fatal("docs/runbooks/datastores.md: no CREATE ROLE shop_monitor line in the script, or no ALTER ROLE of a changed secret to put in its place")
	}
	alter := createLine.ReplaceAllLiteralString(create, unquote(a[1]))

	cl := startPrivateCluster(t)
	secrets := t.TempDir()
	if err := os.Chmod(secrets, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(secrets, "postgres-monitor-password")
	write := func(password string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(password+"\n"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	write("pw-monitor-first")
	watch := cl.watchPasswords(t, "postgres", secrets)
	run := func(script string) ([]byte, error) {
		cmd := exec.Command("/bin/sh", "-c", strings.ReplaceAll(script, "/run/secrets/postgres-monitor-password", file))
		cmd.Env = append([]string{"PGHOST=" + cl.dir, "PGPORT=" + strconv.Itoa(cl.port)}, watch.env...)
		return cmd.CombinedOutput()
	}
	logsIn := func(password string) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, cl.url("shop_monitor", password, "postgres"))
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		var monitor bool
		if err := conn.QueryRow(ctx, "SELECT pg_has_role('pg_monitor', 'MEMBER')").Scan(&monitor); err != nil || !monitor {
			return fmt.Errorf("a member of pg_monitor: %v (%v)", monitor, err)
		}
		return nil
	}
	const quietedHere = "statement: SET log_statement = none"

	if out, err := run(create); err != nil {
		t.Fatalf("the runbook's CREATE ROLE script: %v\n%s", err, out)
	}
	watch.noneSent(t, "the runbook's CREATE ROLE script", quietedHere)
	if err := logsIn("pw-monitor-first"); err != nil {
		t.Errorf("shop_monitor after the runbook's CREATE ROLE script: %v", err)
	}

	write("pw-monitor-changed")
	watch.passwords["postgres-monitor-password, changed"] = "pw-monitor-changed"
	if out, err := run(alter); err != nil {
		t.Fatalf("the runbook's ALTER ROLE script: %v\n%s", err, out)
	}
	watch.noneSent(t, "the runbook's ALTER ROLE script", quietedHere)
	if err := logsIn("pw-monitor-changed"); err != nil {
		t.Errorf("shop_monitor after the runbook's ALTER ROLE script: %v", err)
	}
	if err := logsIn("pw-monitor-first"); err == nil {
		t.Error("shop_monitor still logs in with its first password after the runbook's ALTER ROLE script")
	}

	// An empty file, and one with a CRLF line end (psql's backquote
	// strips the LF alone, the exporter trims the CR too: the role would
	// get a password the exporter cannot log in with), stop it before
	// psql, which changes nothing.
	for _, bad := range []struct{ what, content string }{{"an empty secret file", ""}, {"a CRLF secret file", "pw-monitor-crlf\r"}} {
		write(bad.content)
		out, err := run(alter)
		if err == nil || !strings.Contains(string(out), "unreadable, empty or holds white space") {
			t.Errorf("the runbook's ALTER ROLE script with %s: %v\n%s\nwant it stopped, saying so", bad.what, err, out)
		}
		if err := logsIn("pw-monitor-changed"); err != nil {
			t.Errorf("shop_monitor after the runbook's ALTER ROLE script with %s: %v", bad.what, err)
		}
	}
}

// layOutBeforeTheSplit makes the cluster what the 10-shop.sh of before the
// role split made and its functions migrated: the five databases and their
// schemas owned by the one login role shop (password pw-shared), and, with
// monitor, shop_monitor as it was.
func (c privateCluster) layOutBeforeTheSplit(t *testing.T, monitor bool) {
	t.Helper()
	old := "CREATE ROLE shop LOGIN PASSWORD 'pw-shared';\n"
	if monitor {
		old += "CREATE ROLE shop_monitor LOGIN PASSWORD 'pw-monitor' IN ROLE pg_monitor;\n"
	}
	for service := range serviceMigrations {
		old += "CREATE DATABASE shop_" + service + " OWNER shop;\n"
	}
	c.psql(t, "postgres", old)
	for service := range serviceMigrations {
		c.psql(t, "shop_"+service, "REVOKE ALL ON SCHEMA public FROM PUBLIC;\nGRANT ALL ON SCHEMA public TO shop;\n"+
			"ALTER SCHEMA public OWNER TO shop;\nCREATE EXTENSION IF NOT EXISTS pg_trgm;\n")
	}
	c.migrate(t, func(string) (string, string) { return "shop", "pw-shared" })
}

// 10-shop.sh run on a cluster laid out before the role split (the databases
// owned by shop) would take shop's rights on each schema (ALTER SCHEMA
// public OWNER TO shop_<service>) while the running functions still log in
// as shop: it stops first, pointing to split-roles.sh, and changes nothing,
// the old role still reading and writing every database.
func TestThePostgresInitScriptStopsOnAClusterNotSplitYet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own; -short was asked for")
	}
	cl := startPrivateCluster(t)
	secrets, _ := databaseSecrets(t)
	cl.layOutBeforeTheSplit(t, true)
	roles := "SELECT rolname, rolpassword FROM pg_authid WHERE rolname !~ '^pg_' ORDER BY 1"
	before, rolesBefore := cl.layout(t), cl.query(t, "postgres", roles)
	out, err := cl.scriptOutput(t, "env/faasd/postgres-init/10-shop.sh", secrets, "postgres", "")
	if err == nil || !strings.Contains(string(out), "env/faasd/postgres-upgrade/split-roles.sh") {
		t.Errorf("10-shop.sh on a cluster not split yet: %v\n%s\nwant a failure naming env/faasd/postgres-upgrade/split-roles.sh", err, out)
	}
	if diff := cmp.Diff(before, cl.layout(t)); diff != "" {
		t.Errorf("10-shop.sh on a cluster not split yet changed it (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(rolesBefore, cl.query(t, "postgres", roles)); diff != "" {
		t.Errorf("10-shop.sh on a cluster not split yet changed the roles or their passwords (-before +after):\n%s", diff)
	}
	cl.oldFunctionsStillWork(t, "10-shop.sh")
}

// A deployment whose five databases belong to the one role shop (the
// 10-shop.sh of before, its migrations applied as shop) ends, after
// env/faasd/postgres-upgrade/split-roles.sh, the deploy of the new functions
// and the drop of shop that docs/deploy-faasd.md's step 7 gives, with what a
// new cluster has (TestEachFunctionReachesOnlyItsServicesDatabase's checks);
// between the script and the drop the old functions, still logging in as
// shop, keep reading and writing every database. Its run, every statement
// of it logged, logs no password (passwordWatch), and logs a role check
// for each role; with a secret file missing it stops before its first
// psql, naming the file, and creates no role. The script runs again, as
// an operator may, and keeps the passwords as checkPasswordsKept says.
func TestSplitRolesUpgradesASharedRoleDeployment(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own; -short was asked for")
	}
	cl := startPrivateCluster(t)
	secrets, passwords := databaseSecrets(t)
	cl.layOutBeforeTheSplit(t, true)

	watch := cl.watchPasswords(t, "postgres", secrets)
	// A secret file missing, the last one read: the script stops, naming
	// it, before its first psql, and creates no role.
	late := filepath.Join(secrets, postgres.ReaderPasswordSecret(readerServices[len(readerServices)-1]))
	kept, err := os.ReadFile(late)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(late); err != nil {
		t.Fatal(err)
	}
	rolesBefore := cl.query(t, "postgres", "SELECT rolname FROM pg_roles WHERE rolname LIKE 'shop%' ORDER BY 1")
	out, err := cl.scriptOutput(t, "env/faasd/postgres-upgrade/split-roles.sh", secrets, "postgres", "", watch.env...)
	if err == nil || !strings.Contains(string(out), "split-roles.sh: cannot read "+late) {
		t.Errorf("split-roles.sh with %s missing: %v\n%s\nwant it stopped, naming the file", late, err, out)
	}
	if got := cl.query(t, "postgres", "SELECT rolname FROM pg_roles WHERE rolname LIKE 'shop%' ORDER BY 1"); got != rolesBefore {
		t.Errorf("split-roles.sh with %s missing: roles %q, want those of before, %q", late, got, rolesBefore)
	}
	if log, args := watch.sent(t); strings.Contains(log, "ROLE") || args != "" {
		t.Errorf("split-roles.sh with %s missing ran psql %q or sent a role's statement:\n%s", late, args, log)
	}
	if err := os.WriteFile(late, kept, 0o444); err != nil {
		t.Fatal(err)
	}

	cl.runScriptAs(t, "env/faasd/postgres-upgrade/split-roles.sh", secrets, "postgres", "", watch.env...)
	log := watch.noneSent(t, "split-roles.sh creating the roles", roleCheck, quieted)
	rolesChecked(t, "split-roles.sh creating the roles", log, len(splitRoles()))
	cl.checkPasswordsKept(t, "env/faasd/postgres-upgrade/split-roles.sh", secrets, "postgres", "", splitRoles())
	cl.oldFunctionsStillWork(t, "split-roles.sh")
	roles := productionRoles(t)
	cl.migrate(t, func(service string) (string, string) {
		return roles[service], passwords[postgres.PasswordSecret(service)]
	})
	for service := range serviceMigrations {
		cl.psql(t, "shop_"+service, "DROP OWNED BY shop;\n")
	}
	cl.psql(t, "postgres", "DROP ROLE shop;\n")
	checkDatabaseRoles(t, cl, passwords, roles, true)
}

// The upgrade of docs/deploy-faasd.md step 7 item 8 on a cluster already
// split by 10-shop.sh but laid out before the readers' roles existed: its
// databases migrated through 0008_reader_grants.sql by the service roles
// while the readers' roles were missing, so the migration, recorded as
// applied, granted nothing. split-roles.sh, run as the superuser, creates
// the roles and grants them what the migration would have: the new
// cluster's checks (checkDatabaseRoles, checkReaders among them) pass.
func TestSplitRolesGivesTheReadersRolesToASplitClusterMigratedWithoutThem(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own; -short was asked for")
	}
	cl := startPrivateCluster(t)
	secrets, passwords := databaseSecrets(t)
	cl.runScript(t, "env/faasd/postgres-init/10-shop.sh", secrets)
	for _, service := range readerServices {
		cl.psql(t, "shop_"+service, "DROP OWNED BY "+readerRole(service)+";\n")
		cl.psql(t, "postgres", "DROP ROLE "+readerRole(service)+";\n")
	}
	roles := productionRoles(t)
	cl.migrate(t, func(service string) (string, string) {
		return roles[service], passwords[postgres.PasswordSecret(service)]
	})
	for _, service := range readerServices {
		if got := cl.query(t, "shop_"+service, "SELECT count(*) FROM schema_migrations WHERE version = 8"); strings.TrimSpace(got) != "1" {
			t.Fatalf("shop_%s: 0008 recorded %s times, want once (applied without the readers' role)", service, got)
		}
	}

	cl.runScript(t, "env/faasd/postgres-upgrade/split-roles.sh", secrets)
	checkDatabaseRoles(t, cl, passwords, roles, true)
}

// The upgrade of docs/deploy-faasd.md step 7 item 9 on a cluster that went
// through item 8 with the scripts of before: 10-shop.sh runs only on an
// empty data directory, so such a cluster keeps PostgreSQL's defaults
// (PUBLIC's CONNECT and TEMPORARY on postgres and template1, PUBLIC's
// EXECUTE on the large objects' and advisory locks' functions in every
// service database, which the service's role then holds through PUBLIC
// alone, no temp_file_limit on the readers' roles nor on the relay's)
// until split-roles.sh runs again as the superuser. The cluster is laid out
// by today's 10-shop.sh with those defaults put back, and migrated; after
// split-roles.sh the item's check query prints what the item says and the
// new cluster's checks pass (each service's role migrating under the
// advisory lock that split-roles.sh grants it back).
func TestSplitRolesClosesTheReadersWaysToFillTheDiskOnAClusterOfTheLastRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own; -short was asked for")
	}
	cl := startPrivateCluster(t)
	secrets, passwords := databaseSecrets(t)
	cl.runScript(t, "env/faasd/postgres-init/10-shop.sh", secrets)
	cl.psql(t, "postgres", "GRANT CONNECT, TEMPORARY ON DATABASE postgres, template1 TO PUBLIC;\n"+
		"REVOKE CONNECT ON DATABASE postgres FROM shop_monitor;\n")
	for _, service := range readerServices {
		cl.psql(t, "postgres", "ALTER ROLE "+readerRole(service)+" RESET temp_file_limit;\n")
	}
	cl.psql(t, "postgres", "ALTER ROLE shop_relay RESET temp_file_limit;\n")
	// An operator's settings of a role in one database, which override its
	// setting for every database there: split-roles.sh resets those that
	// lift the limit (-1, or '-1kB' as PostgreSQL stores it when so
	// written; until 2026-12-06 they stayed, and checkDatabaseRoles saw -1
	// there, and '-1kB' until the review of that day) and leaves another value, a limit
	// still (the inventory reader may not connect to shop_payments: the
	// setting is only looked at), '-0', '-0.4', '-0.0004GB' and
	// '-0.0000004TB' too: PostgreSQL reads them as 0, the strictest limit
	// (until a review of 2026-12-06 any negative spelling was reset, and
	// until a later one the GB and TB ones), while '-0.6' is -1, a lift,
	// and so are '-0x1' and '-01001B' (-513 B), hexadecimal and octal to
	// PostgreSQL's strtol, which the scripts' expression does not read so
	// but counts as lifts all the same (it errs toward a lift alone).
	cl.psql(t, "postgres", "ALTER ROLE shop_catalog_reader IN DATABASE shop_catalog SET temp_file_limit = -1;\n"+
		"ALTER ROLE shop_relay IN DATABASE shop_payments SET temp_file_limit = '-0x1';\n"+
		"ALTER ROLE shop_catalog_reader IN DATABASE shop_payments SET temp_file_limit = '-01001B';\n"+
		"ALTER ROLE shop_relay IN DATABASE shop_orders SET temp_file_limit = '-1kB';\n"+
		"ALTER ROLE shop_relay IN DATABASE shop_users SET temp_file_limit = '-0.6';\n"+
		"ALTER ROLE shop_inventory_reader IN DATABASE shop_payments SET temp_file_limit = '512MB';\n"+
		"ALTER ROLE shop_inventory_reader IN DATABASE shop_orders SET temp_file_limit = '-0';\n"+
		"ALTER ROLE shop_catalog_reader IN DATABASE shop_users SET temp_file_limit = '-0.4';\n"+
		"ALTER ROLE shop_catalog_reader IN DATABASE shop_orders SET temp_file_limit = '-0.0004GB';\n"+
		"ALTER ROLE shop_inventory_reader IN DATABASE shop_users SET temp_file_limit = '-0.0000004TB';\n")
	// PostgreSQL's defaults: PUBLIC may execute the large objects' and
	// advisory locks' functions (lo_import, server-side, is the
	// superuser's alone by default), and the service's role holds no
	// grant of its own, so its migrations take the lock only if
	// split-roles.sh grants it back.
	for service := range serviceMigrations {
		cl.psql(t, "shop_"+service, `SELECT format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', oid::regprocedure)
	FROM pg_proc
	WHERE pronamespace = 'pg_catalog'::regnamespace
		AND (proname IN ('lo_creat', 'lo_create', 'lo_from_bytea')
			OR proname ~ '^pg_(try_)?advisory_(xact_)?lock(_shared)?$') \gexec
SELECT format('REVOKE EXECUTE ON FUNCTION %s FROM %I', oid::regprocedure, current_database())
	FROM pg_proc
	WHERE pronamespace = 'pg_catalog'::regnamespace AND proname ~ '^pg_(try_)?advisory_(xact_)?lock(_shared)?$' \gexec
`)
		if got := cl.query(t, "shop_"+service, `SELECT count(*) FROM pg_proc, aclexplode(proacl) a
			WHERE pronamespace = 'pg_catalog'::regnamespace AND a.grantee = '`+"shop_"+service+`'::regrole`); strings.TrimSpace(got) != "0" {
			t.Fatalf("shop_%s: its role still holds %s grants on pg_catalog's functions, want none (as the last release left it)", service, got)
		}
	}
	roles := productionRoles(t)
	cl.migrate(t, func(service string) (string, string) {
		return roles[service], passwords[postgres.PasswordSecret(service)]
	})

	// The item's check query, as docs/deploy-faasd.md prints it.
	m := regexp.MustCompile(`(?s)--exec-id roles-check postgres psql -U postgres -d shop_catalog -Atc \\\n\s*"(.*?)"\n`).
		FindStringSubmatch(string(read(t, "docs/deploy-faasd.md")))
	if m == nil {
		t.Fatal("docs/deploy-faasd.md: no roles-check query in step 7's item 9")
	}
	check := m[1]
	// An ACL's entry for PUBLIC names no role before its '='.
	public := func(acl, privileges string) bool {
		return regexp.MustCompile(`[{,]=` + privileges + `/`).MatchString(acl)
	}
	before := strings.Split(strings.TrimSpace(cl.query(t, "shop_catalog", check)), "|")
	if len(before) != 4 || !public(before[0], "X") || !public(before[1], "Tc") || strings.Contains(before[1], "shop_monitor=") ||
		strings.Contains(before[2], "temp_file_limit") || strings.Contains(before[3], "temp_file_limit") {
		t.Fatalf("the check query before split-roles.sh: %q, want PUBLIC's EXECUTE, CONNECT and TEMPORARY, no monitor's CONNECT, no temp_file_limit", before)
	}

	cl.runScript(t, "env/faasd/postgres-upgrade/split-roles.sh", secrets)
	if got := cl.query(t, "postgres", `SELECT s.setrole::regrole || ' in ' || d.datname || ': ' || array_to_string(s.setconfig, ',')
		FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase ORDER BY 1`); got != "shop_catalog_reader in shop_orders: temp_file_limit=-0.0004GB\n"+
		"shop_catalog_reader in shop_users: temp_file_limit=-0.4\n"+
		"shop_inventory_reader in shop_orders: temp_file_limit=-0\n"+
		"shop_inventory_reader in shop_payments: temp_file_limit=512MB\n"+
		"shop_inventory_reader in shop_users: temp_file_limit=-0.0000004TB\n" {
		t.Errorf("the roles' settings in one database after split-roles.sh:\n%s\nwant shop_catalog_reader's -0.0004GB in shop_orders "+
			"and -0.4 in shop_users, shop_inventory_reader's -0 in shop_orders, 512MB in shop_payments and -0.0000004TB in shop_users "+
			"alone", got)
	}
	after := strings.Split(strings.TrimSpace(cl.query(t, "shop_catalog", check)), "|")
	if len(after) != 4 || public(after[0], "X") || public(after[1], "[A-Za-z]*") || !strings.Contains(after[1], "shop_monitor=c/postgres") ||
		!strings.Contains(after[2], "temp_file_limit="+tempFileLimit) || !strings.Contains(after[2], "default_transaction_read_only=on") ||
		!strings.Contains(after[3], "temp_file_limit="+tempFileLimit) {
		t.Errorf("the check query after split-roles.sh: %q, want what docs/deploy-faasd.md step 7 item 9 says", after)
	}
	// The item runs it in the other service databases too: lo_create
	// without PUBLIC's entry in each.
	for service := range serviceMigrations {
		if lo := strings.Split(cl.query(t, "shop_"+service, check), "|")[0]; public(lo, "X") {
			t.Errorf("the check query's first column in shop_%s after split-roles.sh: %q, want no entry for PUBLIC", service, lo)
		}
	}
	checkDatabaseRoles(t, cl, passwords, roles, true)
}

// checkDatabaseRoles checks, on a cluster set up and migrated, what the
// functions' declared database passwords and the relay's reach. superuser
// tells whether a superuser ran the scripts, and so whether the service
// databases refuse large objects and advisory locks to all but their
// service's role (checkLargeObjectsAndAdvisoryLocks) and the readers' and
// the relay's temporary files are limited (checkTempFileLimit); each
// service's role still migrates there, and the relay works, either way.
func checkDatabaseRoles(t *testing.T, cl privateCluster, passwords, roles map[string]string, superuser bool) {
	t.Helper()
	ctx := context.Background()
	connect := func(user, password, database string) (*pgx.Conn, error) {
		return pgx.Connect(ctx, cl.url(user, password, database))
	}
	reach := map[string]string{} // what each declared secret reaches, once per secret
	readers := map[string]bool{} // the services whose readers' password a function declares
	s, err := stackfile.LoadEnv(filepath.Join(root(t), "stack.yml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range stackfile.Names(s) {
		for _, secret := range s.Functions[name].Secrets {
			service, ok := strings.CutPrefix(secret, "db-password-")
			if !ok || reach[secret] != "" {
				continue
			}
			// A reader's password: checkReaders checks what its role
			// reaches, the role env/production.yml's URL names.
			if service, ok := strings.CutSuffix(service, "-reader"); ok && secret == postgres.ReaderPasswordSecret(service) {
				if !slices.Contains(readerServices, service) {
					t.Errorf("%s declares %s, the password of no readers' role", name, secret)
				} else if role := productionReaderRole(t, service); role != readerRole(service) {
					t.Errorf("env/production.yml's %s names the user %q, want %s", postgres.ReaderURLVar(service), role, readerRole(service))
				}
				readers[service] = true
				continue
			}
			if serviceMigrations[service] == nil {
				t.Errorf("%s declares %s, the password of no service database", name, secret)
				continue
			}
			var got []string
			for other := range serviceMigrations {
				conn, err := connect(roles[service], passwords[secret], "shop_"+other)
				switch {
				case err == nil:
					got = append(got, other)
					_ = conn.Close(ctx)
				case !denied(err):
					t.Errorf("%s's role %s logging in to shop_%s: %v, want success or permission denied", name, roles[service], other, err)
				}
			}
			slices.Sort(got)
			reach[secret] = strings.Join(got, " ")
			if reach[secret] != service {
				t.Errorf("%s's %s (role %s) reaches the databases [%s], want only shop_%s", name, secret, roles[service], reach[secret], service)
			}
		}
	}
	if len(reach) != len(serviceMigrations) {
		t.Errorf("the functions declare the database passwords %v, want one of each service's", slices.Sorted(maps.Keys(reach)))
	}
	if got := slices.Sorted(maps.Keys(readers)); !slices.Equal(got, readerServices) {
		t.Errorf("the functions declare the readers' passwords of %v, want those of %v (10-shop.sh's readers)", got, readerServices)
	}
	for database := range serviceMigrations {
		if conn, err := connect("shop_monitor", passwords["postgres-monitor-password"], "shop_"+database); !denied(err) {
			if conn != nil {
				_ = conn.Close(ctx)
			}
			t.Errorf("shop_monitor logging in to shop_%s: %v, want permission denied", database, err)
		}
	}

	// The monitor logs in to postgres, the one database it reaches (the
	// scripts revoke CONNECT on it from PUBLIC when a superuser runs them).
	if conn, err := connect("shop_monitor", passwords["postgres-monitor-password"], "postgres"); err != nil {
		t.Errorf("shop_monitor logging in to postgres: %v, want it allowed (postgres-exporter's login)", err)
	} else {
		_ = conn.Close(ctx)
	}

	checkReaders(t, cl, passwords, superuser)
	checkLargeObjectsAndAdvisoryLocks(t, cl, passwords, superuser)

	// The writers of every service database still migrate: a pending
	// migration is applied under the advisory lock, which their role may
	// take whoever ran the scripts (pg_try_advisory_lock is refused to
	// PUBLIC there when a superuser did).
	for _, service := range slices.Sorted(maps.Keys(serviceMigrations)) {
		migrations := fstest.MapFS{"9999_after_the_scripts.sql": {Data: []byte("CREATE TABLE after_the_scripts (x int);\n")}}
		if err := fs.WalkDir(serviceMigrations[service](), ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(serviceMigrations[service](), p)
			migrations[p] = &fstest.MapFile{Data: b}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		pool, err := postgres.Open(ctx, postgres.Config{URL: cl.url(roles[service], "", "shop_"+service),
			Password: passwords[postgres.PasswordSecret(service)], MaxConns: 1, Migrations: migrations})
		cancel()
		if err != nil {
			t.Errorf("%s applying a new migration to shop_%s: %v", roles[service], service, err)
			continue
		}
		pool.Close()
		if got := cl.query(t, "shop_"+service, "SELECT count(*) FROM schema_migrations WHERE version = 9999"); strings.TrimSpace(got) != "1" {
			t.Errorf("shop_%s: the new migration recorded %s times, want once", service, got)
		}
	}

	// The relay, with its own secret and the user of docker-compose.yml's
	// URLs, in every database.
	relayPassword := passwords[relay.PasswordSecret]
	for database := range serviceMigrations {
		v := strings.ToUpper(database) + "_DATABASE_URL"
		if u, err := url.Parse(realCompose(t).Services["outbox-relay"].Environment[v]); err != nil || u.User.Username() != "shop_relay" {
			t.Errorf("docker-compose.yml's outbox-relay %s names %v (%v), want the user shop_relay", v, u, err)
		}
		conn, err := connect("shop_relay", relayPassword, "shop_"+database)
		if err != nil {
			t.Errorf("the relay logging in to shop_%s: %v", database, err)
			continue
		}
		allowed := []string{
			`SELECT seq, id, envelope FROM outbox WHERE published_at IS NULL LIMIT 1`,
			`UPDATE outbox SET published_at = now() WHERE seq = ANY('{1}')`,
			`DELETE FROM outbox WHERE seq < 0 AND published_at < now()`,
		}
		refused := []string{
			// seq given: no sequence's privilege stands in for the table's.
			`INSERT INTO outbox (seq, id, type, source, envelope) VALUES (1000000, gen_random_uuid(), 'order.placed.v1', 'orders', '{}')`,
			`UPDATE outbox SET envelope = '{}' WHERE seq = 1`,
			`CREATE TABLE relay_own (x int)`,
		}
		business := map[string]string{"users": "users", "catalog": "products", "orders": "orders", "inventory": "stock", "payments": "payments"}[database]
		refused = append(refused, `SELECT count(*) FROM `+business, `DELETE FROM `+business)
		switch database {
		case "users":
			allowed = append(allowed, `DELETE FROM processed_events WHERE processed_at < now() - interval '1 year'`,
				`DELETE FROM notifications WHERE created_at < now() - interval '1 year'`)
			refused = append(refused, `UPDATE users SET role = 'admin'`, `INSERT INTO processed_events (event_id, consumer) VALUES (gen_random_uuid(), 'x')`)
		case "catalog":
			allowed = append(allowed, `DELETE FROM processed_events WHERE processed_at < now() - interval '1 year'`,
				`DELETE FROM order_sales WHERE state <> 'placed' AND updated_at < now() - interval '1 year'`)
			refused = append(refused, `UPDATE order_sales SET state = 'placed'`, `INSERT INTO order_sales (order_id, state) VALUES (gen_random_uuid(), 'placed')`)
		}
		if database == "users" || database == "catalog" {
			// The consumers' recorded retentions: read, never written
			// (a relay that could lower one would prune what a consumer
			// still needs).
			allowed = append(allowed, `SELECT max(retention_seconds) FROM inbox_retentions`)
			refused = append(refused, `INSERT INTO inbox_retentions (consumer, retention_seconds) VALUES ('x', 1)`,
				`UPDATE inbox_retentions SET retention_seconds = 1`, `DELETE FROM inbox_retentions`)
		}
		for _, q := range allowed {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Errorf("the relay in shop_%s: %s: %v, want it allowed", database, q, err)
			}
		}
		for _, q := range refused {
			if _, err := conn.Exec(ctx, q); !denied(err) {
				t.Errorf("the relay in shop_%s: %s: %v, want permission denied", database, q, err)
			}
		}
		// The relay's own cleanups, as it runs them, and its wait for rows.
		if _, err := inbox.RecordedRetentions(ctx, conn); err != nil {
			t.Errorf("the relay in shop_%s: inbox.RecordedRetentions: %v", database, err)
		}
		if _, err := inbox.Prune(ctx, conn, time.Hour, slog.New(slog.DiscardHandler)); err != nil {
			t.Errorf("the relay in shop_%s: inbox.Prune: %v", database, err)
		}
		if _, err := notificationsdb.Prune(ctx, conn, time.Hour); err != nil {
			t.Errorf("the relay in shop_%s: notificationsdb.Prune: %v", database, err)
		}
		if _, err := catalogdb.PruneOrderSales(ctx, conn, time.Hour); err != nil {
			t.Errorf("the relay in shop_%s: catalogdb.PruneOrderSales: %v", database, err)
		}
		if _, err := conn.Exec(ctx, "LISTEN "+outbox.Channel); err != nil {
			t.Errorf("the relay in shop_%s: LISTEN: %v", database, err)
		}
		// It needs no table to spill temporary files: limited as the
		// readers' are.
		checkTempFileLimit(t, conn, "shop_relay", "shop_"+database, superuser)
		_ = conn.Close(ctx)
	}
}

// A database's own setting (ALTER DATABASE ... SET temp_file_limit) comes
// last but the server's in PostgreSQL's order (a role's setting in that
// database, then the role's own, then the database's, then the server's):
// the scripts set the own limit of every role they limit, so a database's
// -1, however spelled, lifts none of them, and neither script need reset
// it or warn of it. The private cluster's server limits every session to
// 2GB and two service databases lift it: in shop_catalog the service's own
// role, which the scripts leave unset, is unlimited (the database's
// setting is in force there), while the catalog's reader and the relay
// keep the scripts' 1GB, as the inventory's reader and the relay do in
// shop_inventory; an administrator's rerun then warns of no temporary
// files.
func TestADatabasesTempFileLimitLiftsNoRoleTheScriptsLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own; -short was asked for")
	}
	cl := startPrivateCluster(t, "temp_file_limit=2GB")
	secrets, passwords := databaseSecrets(t)
	cl.runScript(t, "env/faasd/postgres-init/10-shop.sh", secrets)
	cl.psql(t, "postgres", "ALTER DATABASE shop_catalog SET temp_file_limit = -1;\n"+
		"ALTER DATABASE shop_inventory SET temp_file_limit = '-1kB';\n")
	ctx := context.Background()
	for _, c := range []struct{ role, secret, database, want string }{
		{"shop_catalog", postgres.PasswordSecret("catalog"), "shop_catalog", "-1"},
		{readerRole("catalog"), postgres.ReaderPasswordSecret("catalog"), "shop_catalog", tempFileLimit},
		{"shop_relay", relay.PasswordSecret, "shop_catalog", tempFileLimit},
		{readerRole("inventory"), postgres.ReaderPasswordSecret("inventory"), "shop_inventory", tempFileLimit},
		{"shop_relay", relay.PasswordSecret, "shop_inventory", tempFileLimit},
	} {
		conn, err := pgx.Connect(ctx, cl.url(c.role, passwords[c.secret], c.database))
		if err != nil {
			t.Fatalf("%s logging in to %s: %v", c.role, c.database, err)
		}
		var limit string
		if err := conn.QueryRow(ctx, `SHOW temp_file_limit`).Scan(&limit); err != nil {
			t.Errorf("%s in %s: SHOW temp_file_limit: %v", c.role, c.database, err)
		} else if limit != c.want {
			t.Errorf("%s in %s, a database whose temp_file_limit is lifted: temp_file_limit %s, want %s", c.role, c.database, limit, c.want)
		}
		_ = conn.Close(ctx)
	}
	cl.psql(t, "postgres", "CREATE ROLE shop_admin LOGIN CREATEROLE CREATEDB PASSWORD 'pw-admin';\n"+
		"GRANT CONNECT ON DATABASE postgres TO shop_admin;\n")
	for _, script := range []string{"env/faasd/postgres-init/10-shop.sh", "env/faasd/postgres-upgrade/split-roles.sh"} {
		name := filepath.Base(script)
		out, err := cl.scriptOutput(t, script, secrets, "shop_admin", "pw-admin")
		if err != nil {
			t.Fatalf("%s run as shop_admin after the superuser: %v\n%s", name, err, out)
		}
		if got := outsideWarning(out, name); got != "" {
			t.Errorf("%s run as shop_admin after the superuser, in databases whose temp_file_limit is lifted: warned %q, want no warning\n%s", name, got, out)
		}
	}
}

// tempFileLimit is the temp_file_limit the scripts set on the readers'
// roles and the relay's, as SHOW prints it.
const tempFileLimit = "1GB"

// checkTempFileLimit checks the temporary files of role's session conn in
// database (a sort or a hash larger than work_mem spills to disk, a
// read-only query's too, and one that reads no table, such as a sort of
// generate_series, as much as any): limited to tempFileLimit by the role's
// temp_file_limit where a superuser ran the scripts (superuser), not limited
// where another administrator did; a setting only a superuser may change,
// so the session cannot raise it either way.
func checkTempFileLimit(t *testing.T, conn postgres.Querier, role, database string, superuser bool) {
	t.Helper()
	ctx := context.Background()
	var limit string
	if err := conn.QueryRow(ctx, `SHOW temp_file_limit`).Scan(&limit); err != nil {
		t.Errorf("%s in %s: SHOW temp_file_limit: %v", role, database, err)
	} else if want := map[bool]string{true: tempFileLimit, false: "-1"}[superuser]; limit != want {
		t.Errorf("%s in %s: temp_file_limit %s, want %s", role, database, limit, want)
	}
	for _, q := range []string{`SET temp_file_limit = -1`, `SET temp_file_limit = '2GB'`, `SELECT set_config('temp_file_limit', '-1', false)`} {
		if _, err := conn.Exec(ctx, q); !denied(err) {
			t.Errorf("%s in %s: %s: %v, want permission denied", role, database, q, err)
		}
	}
}

// checkReaders checks, on a cluster set up and migrated, what the public
// readers' roles reach: each logs in to its service's database and no
// other, runs every query of its functions' stores there (the catalog's
// get-product, list-products and search-products, and the command reindex,
// the inventory's get-stock) and the check that the database is migrated
// (schema_migrations), and is refused any write, the outbox, the inbox and
// the other business tables, and creating a table, a temporary one
// included; its sessions start read-only (transaction_read_only on), so
// each write is refused as one, and the privileges refuse them all the same
// once the session set that default off. Large objects and advisory locks:
// checkLargeObjectsAndAdvisoryLocks.
func checkReaders(t *testing.T, cl privateCluster, passwords map[string]string, superuser bool) {
	t.Helper()
	ctx := context.Background()
	for _, service := range readerServices {
		role, password := readerRole(service), passwords[postgres.ReaderPasswordSecret(service)]
		var reach []string
		for other := range serviceMigrations {
			conn, err := pgx.Connect(ctx, cl.url(role, password, "shop_"+other))
			switch {
			case err == nil:
				reach = append(reach, other)
				_ = conn.Close(ctx)
			case !denied(err):
				t.Errorf("%s logging in to shop_%s: %v, want success or permission denied", role, other, err)
			}
		}
		if len(reach) != 1 || reach[0] != service {
			t.Errorf("%s reaches the databases %v, want only shop_%s", role, reach, service)
		}
		// Nor the cluster's own databases, where PUBLIC may connect and
		// create large objects (and temporary tables in postgres) by
		// PostgreSQL's defaults: refused where a superuser ran the scripts, still open
		// (and said so) where another administrator did.
		for _, database := range []string{"postgres", "template1"} {
			conn, err := pgx.Connect(ctx, cl.url(role, password, database))
			switch {
			case superuser && !denied(err):
				t.Errorf("%s logging in to %s: %v, want permission denied", role, database, err)
			case !superuser && err != nil:
				t.Errorf("%s logging in to %s, the scripts run by an administrator that is not a superuser: %v, want it allowed (what docs/security.md says remains)", role, database, err)
			}
			if conn != nil {
				_ = conn.Close(ctx)
			}
		}
		// Opened as a reader opens it: the check that every migration is
		// applied (schema_migrations) instead of migrating.
		pool, err := postgres.Open(ctx, postgres.Config{URL: cl.url(role, password, "shop_"+service), MaxConns: 1,
			Migrations: serviceMigrations[service](), ReadOnly: true})
		if err != nil {
			t.Errorf("%s opening shop_%s: %v", role, service, err)
			continue
		}
		// A read that finds nothing has run: PostgreSQL checks the
		// privileges before it reads a row.
		found := func(err error) error {
			if fault.Is(err, fault.NotFound, "") {
				return nil
			}
			return err
		}
		reads := map[string]func() error{
			"schema_migrations": func() error {
				_, err := pool.Exec(ctx, `SELECT max(version) FROM schema_migrations`)
				return err
			},
		}
		var refused []string
		switch service {
		case "catalog":
			store, index := catalogdb.New(pool), pgsearch.New(pool)
			reads["get-product's Get"] = func() error { _, err := store.Get(ctx, uuid.New()); return found(err) }
			reads["list-products' List"] = func() error { _, _, err := store.List(ctx, "shoes", uuid.Nil, 10); return err }
			reads["search-products' Search"] = func() error {
				minPrice, inStock := int64(1), true
				_, err := index.Search(ctx, search.Query{Text: "red shoe", Category: "shoes", MinPrice: &minPrice, InStock: &inStock, Limit: 10})
				return err
			}
			reads["search-products' browse"] = func() error { _, err := index.Search(ctx, search.Query{Limit: 10}); return err }
			// The operator command reindex logs in as this role too
			// (CATALOG_READER_DATABASE_URL): its listing and its re-read.
			reads["reindex's LivePage"] = func() error { _, err := store.LivePage(ctx, uuid.Nil, 10); return err }
			reads["reindex's CurrentOf"] = func() error { _, err := store.CurrentOf(ctx, []uuid.UUID{uuid.New()}); return err }
			refused = []string{
				`INSERT INTO products (id, sku, name, category, price_amount, price_currency) VALUES (gen_random_uuid(), 'x', 'x', 'x', 1, 'EUR')`,
				`UPDATE products SET price_amount = 1`,
				`UPDATE products SET archived = true`,
				`DELETE FROM products`,
				`TRUNCATE products`,
				`SELECT id FROM products FOR UPDATE`,
				`INSERT INTO search_documents (id, sku, name, description, category, price_amount, price_currency) VALUES (gen_random_uuid(), 'x', 'x', '', 'x', 1, 'EUR')`,
				`UPDATE search_documents SET price_amount = 1`,
				`DELETE FROM search_documents`,
				`SELECT count(*) FROM processed_events`,
				`SELECT count(*) FROM order_sales`,
			}
		case "inventory":
			store := inventorydb.New(pool)
			reads["get-stock's Get"] = func() error { _, err := store.Get(ctx, uuid.New()); return found(err) }
			refused = []string{
				`INSERT INTO stock (product_id, on_hand) VALUES (gen_random_uuid(), 1)`,
				`UPDATE stock SET on_hand = 1000000`,
				`DELETE FROM stock`,
				`TRUNCATE stock`,
				`SELECT product_id FROM stock FOR UPDATE`,
				`SELECT count(*) FROM reservations`,
				`UPDATE reservations SET status = 'released'`,
			}
		}
		refused = append(refused,
			`INSERT INTO outbox (seq, id, type, source, envelope) VALUES (1000000, gen_random_uuid(), 'product.changed.v1', 'x', '{}')`,
			`SELECT count(*) FROM outbox`,
			`UPDATE outbox SET published_at = now()`,
			`DELETE FROM outbox`,
			`INSERT INTO schema_migrations (version, name) VALUES (1000000, 'x')`,
			`DELETE FROM schema_migrations`,
			`CREATE TABLE reader_own (x int)`,
			`CREATE TEMP TABLE reader_temp (x int)`,
		)
		for _, name := range slices.Sorted(maps.Keys(reads)) {
			if err := reads[name](); err != nil {
				t.Errorf("%s in shop_%s: %s: %v, want it allowed", role, service, name, err)
			}
		}
		// Its sessions start read-only (the role's default_transaction_read_only,
		// 10-shop.sh, split-roles.sh): every write is refused as one, before
		// its privileges are checked; a read of a table it may not read is
		// refused by the privileges. A session can set the default off, so
		// the privileges must refuse the same writes then.
		conn, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		var readOnly string
		if err := conn.QueryRow(ctx, `SHOW transaction_read_only`).Scan(&readOnly); err != nil || readOnly != "on" {
			t.Errorf("%s in shop_%s: transaction_read_only %q (%v), want on", role, service, readOnly, err)
		}
		for _, q := range refused {
			_, err := conn.Exec(ctx, q)
			if read := strings.HasPrefix(q, "SELECT count(*)"); read && !denied(err) {
				t.Errorf("%s in shop_%s: %s: %v, want permission denied", role, service, q, err)
			} else if !read && !readOnlyRefused(err) {
				t.Errorf("%s in shop_%s: %s: %v, want refused in a read-only transaction", role, service, q, err)
			}
		}
		if _, err := conn.Exec(ctx, `SET default_transaction_read_only = off`); err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		for _, q := range refused {
			if _, err := conn.Exec(ctx, q); !denied(err) {
				t.Errorf("%s in shop_%s, its session's default set off: %s: %v, want permission denied", role, service, q, err)
			}
		}
		checkTempFileLimit(t, conn, role, "shop_"+service, superuser)
		conn.Release()
		pool.Close()
	}
}

// checkLargeObjectsAndAdvisoryLocks checks, on a cluster set up and
// migrated, what no table's privilege controls: creating large objects
// (disk) and taking advisory locks (the migrations' key: held, it would
// hold the service's migrations back), by every role but the owner's that
// may log in to each service database (the relay's in all five, the
// readers' in theirs: the roles found in the catalog, not a list of ours,
// so a role granted CONNECT later is checked too), in both modes of its
// session (default_transaction_read_only off and on). Where a superuser ran
// the scripts (superuser) each is refused; where an administrator that is
// not one ran them, each is still allowed, as docs/security.md says. A
// superuser, and a member of the owner's role (an administrator that ran
// 10-shop.sh), have the owner's rights, which keep the locks.
func checkLargeObjectsAndAdvisoryLocks(t *testing.T, cl privateCluster, passwords map[string]string, superuser bool) {
	t.Helper()
	ctx := context.Background()
	key := strconv.FormatInt(postgres.MigrationLockKey, 10)
	functions := []string{
		`SELECT lo_create(0)`,
		`SELECT lo_creat(-1)`,
		`SELECT lo_from_bytea(0, '\x00')`,
		`SELECT pg_advisory_lock(` + key + `)`,
		`SELECT pg_try_advisory_lock(` + key + `)`,
		`SELECT pg_advisory_lock_shared(` + key + `)`,
		`SELECT pg_try_advisory_lock_shared(` + key + `)`,
		`SELECT pg_advisory_xact_lock(` + key + `)`,
		`SELECT pg_try_advisory_xact_lock(` + key + `)`,
		`SELECT pg_advisory_lock(1, 2)`,
	}
	for _, service := range slices.Sorted(maps.Keys(serviceMigrations)) {
		db := "shop_" + service
		roles := strings.Fields(cl.query(t, db, `SELECT r.rolname FROM pg_roles r, pg_database d
			WHERE d.datname = current_database() AND r.rolcanlogin AND NOT r.rolsuper
				AND has_database_privilege(r.oid, d.oid, 'CONNECT') AND NOT pg_has_role(r.oid, d.datdba, 'USAGE')
			ORDER BY 1`))
		want := []string{"shop_relay"}
		if slices.Contains(readerServices, service) {
			want = append(want, readerRole(service))
		}
		for _, role := range want {
			if !slices.Contains(roles, role) {
				t.Errorf("%s: the roles other than its owner that may log in are %v, want %s among them", db, roles, role)
			}
		}
		for _, role := range roles {
			password, ok := passwords[roleSecret(role)]
			if !ok {
				t.Errorf("%s may log in to %s: a role the scripts do not make (no password known to check it)", role, db)
				continue
			}
			conn, err := pgx.Connect(ctx, cl.url(role, password, db))
			if err != nil {
				t.Errorf("%s logging in to %s: %v", role, db, err)
				continue
			}
			for _, mode := range []string{"off", "on"} {
				if _, err := conn.Exec(ctx, `SET default_transaction_read_only = `+mode); err != nil {
					t.Fatalf("%s: %v", role, err)
				}
				for _, q := range functions {
					_, err := conn.Exec(ctx, q)
					switch {
					case superuser && !denied(err):
						t.Errorf("%s in %s, default_transaction_read_only %s: %s: %v, want permission denied", role, db, mode, q, err)
					case !superuser && err != nil:
						t.Errorf("%s in %s, default_transaction_read_only %s, the scripts run by an administrator that is not a superuser: %s: %v, want it allowed (what docs/security.md says remains)",
							role, db, mode, q, err)
					}
				}
				if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`); err != nil {
					t.Fatalf("%s: %v", role, err)
				}
			}
			_ = conn.Close(ctx)
		}
	}
}

// restoreFlags are the flags docs/deploy-faasd.md's step 8 gives pg_restore
// for a dump taken before each service had a role of its own.
func restoreFlags(service string) []string {
	return []string{"--no-owner", "--no-privileges", "--no-comments", "--role=shop_" + service}
}

// A dump taken before the split (its objects owned by shop, its grants to
// shop) restores, as docs/deploy-faasd.md's step 8 says, into the databases
// 10-shop.sh makes on a rebuilt cluster where shop no longer exists: with
// pg_restore's restoreFlags, then split-roles.sh run again for the relay's
// grants, everything restored belongs to the service's role and the
// cluster, once the functions started (their migrations, as their roles),
// ends as a new one does (TestEachFunctionReachesOnlyItsServicesDatabase's
// checks).
func TestAPreSplitDumpRestoresIntoTheServiceRoles(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own; -short was asked for")
	}
	if guide, want := string(read(t, "docs/deploy-faasd.md")), strings.Join(restoreFlags("$s")[1:], " "); !strings.Contains(guide, want) {
		t.Errorf("docs/deploy-faasd.md's restore does not give pg_restore %q", want)
	}
	cl := startPrivateCluster(t)
	secrets, passwords := databaseSecrets(t)
	cl.layOutBeforeTheSplit(t, false)

	dumps := t.TempDir()
	if err := os.Chmod(dumps, 0o777); err != nil {
		t.Fatal(err)
	}
	pg := func(prog string, args ...string) {
		t.Helper()
		cmd := exec.Command(prog, append([]string{"--username", "postgres"}, args...)...)
		cmd.Env = append(os.Environ(), "PGHOST="+cl.dir, "PGPORT="+strconv.Itoa(cl.port))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", prog, args, err, out)
		}
	}
	for service := range serviceMigrations {
		pg("pg_dump", "-Fc", "-f", filepath.Join(dumps, service+".dump"), "shop_"+service)
	}
	// The cluster rebuilt: the old databases and role gone, 10-shop.sh's.
	drop := "DROP ROLE shop;\n"
	for service := range serviceMigrations {
		drop = "DROP DATABASE shop_" + service + ";\n" + drop
	}
	cl.psql(t, "postgres", drop)
	cl.runScript(t, "env/faasd/postgres-init/10-shop.sh", secrets)
	for service := range serviceMigrations {
		pg("pg_restore", append(append([]string{"--exit-on-error", "-d", "shop_" + service}, restoreFlags(service)...),
			filepath.Join(dumps, service+".dump"))...)
	}
	cl.runScript(t, "env/faasd/postgres-upgrade/split-roles.sh", secrets)

	roles := productionRoles(t)
	for service := range serviceMigrations {
		if got := cl.query(t, "shop_"+service, `SELECT DISTINCT relowner::regrole FROM pg_class WHERE relnamespace = 'public'::regnamespace`); got != "shop_"+service+"\n" {
			t.Errorf("shop_%s restored: its relations belong to %q, want shop_%s alone", service, got, service)
		}
	}
	cl.migrate(t, func(service string) (string, string) {
		return roles[service], passwords[postgres.PasswordSecret(service)]
	})
	checkDatabaseRoles(t, cl, passwords, roles, true)
}

// oldFunctionsStillWork checks that a function of before the split, logging
// in as shop, still reads and writes every service database after the named
// script ran, and still takes the migrations' advisory lock (its migrations
// at start), which split-roles.sh leaves to the service's roles, shop a
// member of each.
func (c privateCluster) oldFunctionsStillWork(t *testing.T, after string) {
	t.Helper()
	ctx := context.Background()
	for service := range serviceMigrations {
		conn, err := pgx.Connect(ctx, c.url("shop", "pw-shared", "shop_"+service))
		if err != nil {
			t.Fatalf("an old function logging in to shop_%s as shop after %s: %v", service, after, err)
		}
		if _, err := conn.Exec(ctx, `DELETE FROM outbox WHERE seq < 0`); err != nil {
			t.Errorf("an old function writing shop_%s as shop after %s: %v", service, after, err)
		}
		var locked bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, postgres.MigrationLockKey).Scan(&locked); err != nil || !locked {
			t.Errorf("an old function taking the migrations' lock in shop_%s as shop after %s: %t, %v", service, after, locked, err)
		}
		_ = conn.Close(ctx)
	}
}

// split-roles.sh's grants to the relay's role are a second copy of what the
// services' migrations grant it (GRANT … ON <table> TO shop_relay): the
// script grants them again where the migrations granted nothing (a database
// migrated before the role existed). The two must grant the same privileges
// on the same tables, or a relay upgraded with the script is refused a
// table it prunes or reads (its cleanup then warns, or keeps rows, for good).
func TestSplitRolesGrantsTheRelayWhatTheMigrationsGrant(t *testing.T) {
	grant := regexp.MustCompile(`GRANT\s+([A-Z][A-Za-z_, ()]*?)\s+ON\s+([a-z_]+)\s+TO\s+shop_relay\b`)
	grants := func(text string) []string {
		var out []string
		for _, m := range grant.FindAllStringSubmatch(text, -1) {
			out = append(out, m[2]+": "+m[1])
		}
		return out
	}
	var fromMigrations []string
	for service, migrations := range serviceMigrations {
		err := fs.WalkDir(migrations(), ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".sql") {
				return err
			}
			b, err := fs.ReadFile(migrations(), p)
			fromMigrations = append(fromMigrations, grants(string(b))...)
			return err
		})
		if err != nil {
			t.Fatalf("%s migrations: %v", service, err)
		}
	}
	fromScript := grants(string(read(t, "env/faasd/postgres-upgrade/split-roles.sh")))
	slices.Sort(fromMigrations)
	slices.Sort(fromScript)
	fromMigrations = slices.Compact(fromMigrations)
	if !slices.Contains(fromMigrations, "inbox_retentions: SELECT") {
		t.Errorf("the migrations' grants to shop_relay %q: want SELECT on inbox_retentions among them", fromMigrations)
	}
	if diff := cmp.Diff(fromMigrations, fromScript); diff != "" {
		t.Errorf("shop_relay's grants: the migrations vs split-roles.sh (-migrations +script):\n%s", diff)
	}
}

// split-roles.sh's lists of the tables each readers' role reads are a second
// copy of what the services' migrations grant it (GRANT SELECT ON … TO
// shop_<service>_reader): the script grants them again where the migrations
// granted nothing (a database migrated before the role existed, a restore
// with --no-privileges). The two must name the same tables, or a reader
// restored or upgraded with the script is refused a table (or given one the
// migrations never grant).
func TestSplitRolesGrantsTheReadersWhatTheMigrationsGrant(t *testing.T) {
	script := string(read(t, "env/faasd/postgres-upgrade/split-roles.sh"))
	grant := regexp.MustCompile(`(?is)GRANT\s+SELECT\s+ON\s+([a-z_,\s]+?)\s+TO\s+(shop_[a-z]+_reader)\b`)
	for _, service := range readerServices {
		var fromMigrations []string
		err := fs.WalkDir(serviceMigrations[service](), ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".sql") {
				return err
			}
			b, err := fs.ReadFile(serviceMigrations[service](), p)
			if err != nil {
				return err
			}
			for _, m := range grant.FindAllStringSubmatch(string(b), -1) {
				if m[2] != readerRole(service) {
					t.Errorf("%s migration %s grants %s, not its service's readers' role", service, p, m[2])
					continue
				}
				for _, table := range strings.Split(m[1], ",") {
					fromMigrations = append(fromMigrations, strings.TrimSpace(table))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^\s*` + service + `\) tables="([^"]*)" ;;`).FindStringSubmatch(script)
		if m == nil {
			t.Errorf("split-roles.sh: no tables=\"…\" line for %s", service)
			continue
		}
		fromScript := strings.Fields(m[1])
		slices.Sort(fromMigrations)
		slices.Sort(fromScript)
		fromMigrations = slices.Compact(fromMigrations)
		if len(fromMigrations) == 0 {
			t.Errorf("no %s migration grants %s anything", service, readerRole(service))
		}
		if diff := cmp.Diff(fromMigrations, fromScript); diff != "" {
			t.Errorf("the tables %s reads: the %s migrations vs split-roles.sh (-migrations +script):\n%s", readerRole(service), service, diff)
		}
	}
}
