#!/bin/sh
# First start of the postgres service (docker-compose.yml): the official image
# runs this once, when the data directory is empty, as the superuser. It
# creates one database per service, shop_<service>, each owned by a login
# role of its own, shop_<service>, with the password of the secret file
# db-password-<service>, and no other role but the relay's (and, for the
# catalog and the inventory, their readers', below) may connect to it: a
# function holds its service's secret alone (stack.yml), so whatever
# it is made to do, it reaches one database (docs/security.md, "Database
# roles"). The login role shop_relay (secret db-password-relay) may connect
# to every service database; what it may do there (read and mark the
# outbox, delete old rows) each service's migration *_relay_grants.sql
# grants it once the tables exist. The public readers of the catalog and
# of the inventory log in as read-only roles of their own,
# shop_catalog_reader and shop_inventory_reader (secrets
# db-password-catalog-reader, db-password-inventory-reader), which may
# connect to their service's database only and use its schema; the
# SELECT on the tables they read is each service's migration
# *_reader_grants.sql's. pg_trgm (catalog search) is available in
# each database. The login role shop_monitor (pg_monitor: statistics only,
# no table, the postgres database only) has the password of
# postgres-monitor-password, for the postgres-exporter service. Schemas are
# created by the functions' migrations at start (DATABASE_CREATE=false in
# production), as their service's role. The secret files are read from
# SHOP_SECRETS_DIR [/run/secrets].
#
# On Kubernetes the script runs against a managed PostgreSQL
# (docs/deploy-kubernetes.md), perhaps more than once and as an
# administrator that is not a superuser (CREATEROLE and CREATEDB): it
# creates what is missing and leaves what exists. (Once a superuser has run
# it, the postgres database admits only the roles granted CONNECT there:
# such an administrator then needs that grant to run it again;
# docs/security.md.) A role's password is set
# only when the run creates the role: setting it again makes a new SCRAM
# salt, so PgBouncer's auth_file secrets would no longer match, and a rerun
# with stale files would reset every password. SHOP_RESET_PASSWORDS=true
# sets each existing role's password again from its file and lets the role
# log in again (ALTER ROLE ... LOGIN PASSWORD): the repair of a password
# changed by hand or of a role made NOLOGIN; a run without it leaves LOGIN
# as an operator set it. A non-superuser may create a database owned by a
# role, or give it a schema, only as a member of that role (PostgreSQL 15),
# so such an administrator is granted each service role first and stays a
# member. PostgreSQL 16 and later make a CREATEROLE administrator a member
# of what it creates without SET, which CREATE DATABASE ... OWNER needs, or
# INHERIT, which the grants on the database need (createrole_self_grant):
# there the grant is WITH INHERIT TRUE, SET TRUE, made when either is
# missing. Only PostgreSQL 15 is
# tested here (dev/deploycheck); the 16 path is not. On a cluster laid
# out before the role split (a shop_<service> database owned by another
# role, shop) it stops before changing anything and points to
# env/faasd/postgres-upgrade/split-roles.sh, the upgrade of such a cluster.
set -eu

# Read into a variable first: a failed $(cat ...) inside psql's input (or
# a failed read inside psql: a backquoted `cat` stops no psql, even with
# ON_ERROR_STOP) would not stop the script and the role would get an empty
# password. The script runs as the postgres user (uid 999), so the
# files must be readable by it (docs/deploy-faasd.md, step 3).
# SHOP_SECRETS_DIR is for dev/deploycheck's tests.
read_password() {
	p=$(cat "$1") || {
		echo "10-shop.sh: cannot read $1 (it must be readable by uid $(id -u))" >&2
		exit 1
	}
	if [ -z "$p" ]; then
		echo "10-shop.sh: $1 is empty" >&2
		exit 1
	fi
	# Its readers (the functions, the relay, postgres_exporter) trim
	# surrounding white space and $(cat) strips only the final newlines:
	# a password with a space, a tab or a CR would differ between them.
	case $p in *[[:space:]]*)
		echo "10-shop.sh: $1 holds white space (a CRLF line end?)" >&2
		exit 1
		;;
	esac
	printf '%s' "$p"
}
# The passwords reach psql on its standard input, never in its arguments
# (which other local users see in ps when an operator runs this from a
# workstation), as a psql variable the server sees only in the CREATE or
# ALTER ROLE that sets it, which the server does not log (below): a
# rerun that changes no role sends none. psql_quoted quotes $1 for a psql
# \set: a backslash and a quote doubled (psql's rules for a single-quoted
# argument of a meta-command); sed reads it from a pipe, printf is a shell
# builtin.
psql_quoted() {
	printf '%s\n' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g"
}
services="users catalog orders inventory payments"
# The services whose public readers have a role of their own,
# shop_<service>_reader, with the password of db-password-<service>-reader
# (a secret's name takes no underscore on Kubernetes, a role's no hyphen
# unquoted).
readers="catalog inventory"
secrets=${SHOP_SECRETS_DIR:-/run/secrets}
# Every file is read, and its password quoted, before the first psql: one
# that is missing creates no role at all (the data directory is not
# initialised again on the next start), and a quoting that fails (sed
# missing, or refusing a byte its locale does not know) stops the script
# here; inside psql's input pipe its status would be lost and the role
# would get an empty password.
for s in $services relay monitor $(for r in $readers; do echo "${r}_reader"; done); do
	case $s in
	monitor) p=$(read_password "$secrets/postgres-monitor-password") || exit 1 ;;
	*_reader) p=$(read_password "$secrets/db-password-${s%_reader}-reader") || exit 1 ;;
	*) p=$(read_password "$secrets/db-password-$s") || exit 1 ;;
	esac
	q=$(psql_quoted "$p") && [ -n "$q" ] || {
		echo "10-shop.sh: cannot quote the password of shop_$s for psql" >&2
		exit 1
	}
	eval "${s}_quoted=\$q"
done
case ${SHOP_RESET_PASSWORDS:-false} in
true | false) reset_passwords=${SHOP_RESET_PASSWORDS:-false} ;;
*)
	echo "10-shop.sh: SHOP_RESET_PASSWORDS is true, false or unset, not $SHOP_RESET_PASSWORDS" >&2
	exit 1
	;;
esac

{
	cat <<'SQL'
-- A cluster laid out before the role split (its databases owned by the one
-- role shop, which the running functions log in as): making the service
-- roles own the schemas would take shop's rights away from under them.
-- Nothing is changed; split-roles.sh is that upgrade.
DO $$
DECLARE
	bad text;
BEGIN
	SELECT string_agg(format('%s (owned by %s)', datname, datdba::regrole), ', ' ORDER BY datname) INTO bad
		FROM pg_database
		WHERE datname IN ('shop_users', 'shop_catalog', 'shop_orders', 'shop_inventory', 'shop_payments')
			AND datdba::regrole::text <> datname;
	IF bad IS NOT NULL THEN
		RAISE EXCEPTION '10-shop.sh: % not owned by its service''s role: a cluster from before the role split, changed nothing; run env/faasd/postgres-upgrade/split-roles.sh instead (docs/deploy-faasd.md, step 7)', bad;
	END IF;
END
$$;
SQL
	# The statements that set a password run with the server's statement
	# logging off for them alone: log_statement, the durations
	# (log_min_duration_statement), the samples (log_min_duration_sample,
	# log_transaction_sample_rate) and the STATEMENT line of an error
	# (log_min_error_statement), and the statement's text in
	# pg_stat_activity (track_activities), which a crash's "Failed process
	# was running" and another session's deadlock DETAIL would log, each
	# SET right before and RESET right after, so a server that logs
	# statements does not write a password, and the rest of the script is
	# logged as the operator configured. Where it may SET it (a
	# superuser), pg_stat_statements.track_utility is turned off the same
	# way, so the module, if loaded, keeps no such statement (a
	# non-superuser may not, loaded or not, and is not told). The others
	# are superusers' parameters: an administrator that may not SET one
	# of them (PostgreSQL 15 grants it with GRANT SET ON PARAMETER)
	# sets the passwords all the same, and is told once that they may be
	# logged (docs/security.md, "Database roles"). split-roles.sh has the
	# same block.
	cat <<'SQL'
SELECT bool_and(has_parameter_privilege(current_user, p, 'SET')) AS quiet
	FROM unnest(ARRAY['log_statement', 'log_min_duration_statement', 'log_min_duration_sample',
		'log_transaction_sample_rate', 'log_min_error_statement', 'track_activities']) p \gset
SELECT has_parameter_privilege(current_user, 'pg_stat_statements.track_utility', 'SET') AS untracked \gset
\set warned false
SQL
	# An existing role keeps its password (a new SCRAM salt would no longer
	# match PgBouncer's auth_file, and stale files would reset them all)
	# unless SHOP_RESET_PASSWORDS=true asks: then it is set again from its
	# file and the role may log in again (ALTER ROLE ... PASSWORD alone
	# would leave a NOLOGIN role so). A role missing is created with its
	# password.
	for s in monitor relay $services $(for r in $readers; do echo "${r}_reader"; done); do
		eval "q=\$${s}_quoted"
		printf '\\set role shop_%s\n\\set p '\''%s'\''\n' "$s" "$q"
		cat <<'SQL'
SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') AS role_exists,
	NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') OR :reset_passwords AS sets_password \gset
\if :sets_password
\if :untracked
SET pg_stat_statements.track_utility = off;
\endif
\if :quiet
SET log_statement = 'none' \; SET log_min_duration_statement = -1 \; SET log_min_duration_sample = -1 \;
	SET log_transaction_sample_rate = 0 \; SET log_min_error_statement = 'panic' \; SET track_activities = off;
\elif :warned
\else
\warn 10-shop.sh: not allowed to SET log_statement, log_min_duration_statement, log_min_duration_sample, log_transaction_sample_rate, log_min_error_statement and track_activities, so a server that logs statements may log the passwords this run sets (docs/security.md, Database roles)
\set warned true
\endif
\if :role_exists
ALTER ROLE :"role" LOGIN PASSWORD :'p';
\else
CREATE ROLE :"role" LOGIN PASSWORD :'p';
\endif
\if :quiet
RESET track_activities \; RESET log_min_error_statement \; RESET log_transaction_sample_rate \;
	RESET log_min_duration_sample \; RESET log_min_duration_statement \; RESET log_statement;
\endif
\if :untracked
RESET pg_stat_statements.track_utility;
\endif
\endif
\unset p
SQL
	done
	cat <<'SQL'
SELECT 'GRANT pg_monitor TO shop_monitor' WHERE NOT pg_has_role('shop_monitor', 'pg_monitor', 'MEMBER') \gexec
-- PostgreSQL 16 makes a CREATEROLE administrator a member of the roles it
-- creates without SET or INHERIT (createrole_self_grant, which may give
-- either or both), and CREATE DATABASE ... OWNER needs SET, the GRANT and
-- REVOKE on each database below INHERIT (USAGE: the owner's privileges):
-- there the check and the grant name both, so a membership with SET alone
-- (createrole_self_grant = 'set') is granted INHERIT too (syntax of 16 and
-- later; not tested here, where only 15 runs).
SELECT current_setting('server_version_num')::int >= 160000 AS pg16 \gset
\if :pg16
SELECT format('GRANT %I TO CURRENT_USER WITH INHERIT TRUE, SET TRUE', r)
	FROM unnest(ARRAY['shop_users', 'shop_catalog', 'shop_orders', 'shop_inventory', 'shop_payments']) r
	WHERE NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
		AND NOT (pg_has_role(r, 'SET') AND pg_has_role(r, 'USAGE')) \gexec
\else
SELECT format('GRANT %I TO CURRENT_USER', r)
	FROM unnest(ARRAY['shop_users', 'shop_catalog', 'shop_orders', 'shop_inventory', 'shop_payments']) r
	WHERE NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AND NOT pg_has_role(r, 'MEMBER') \gexec
\endif
SELECT format('CREATE DATABASE %I OWNER %I', r, r)
	FROM unnest(ARRAY['shop_users', 'shop_catalog', 'shop_orders', 'shop_inventory', 'shop_payments']) r
	WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = r) \gexec
SQL
} | psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres --set=reset_passwords="$reset_passwords"

# PUBLIC may connect to a new database (and create temporary tables in it):
# each service database is its own role's and the relay's alone (and its
# readers', granted after this loop).
#
# What no grant on a table controls and a read-only session still allows:
# creating large objects (disk a role could fill) and taking advisory locks
# (the migrations' key among them: a role holding it would hold the
# service's migrations back until each build gives up). Both are functions
# that PUBLIC may execute, and so every role that may connect: the relay's
# in every service database, the readers' in theirs. In each service
# database EXECUTE on them is revoked from PUBLIC, and on the advisory locks
# granted back to the service's role, whose migrations take one
# (internal/postgres). The relay takes none, and no writer uses large
# objects. Only the functions' owner, the bootstrap superuser, or another
# superuser may change their privileges (an owner of the database, or a
# CREATEROLE administrator of a managed PostgreSQL, gets "no privileges
# could be revoked"): an administrator that is not a superuser leaves them
# as they are and is told so (docs/security.md says what then remains),
# where PUBLIC still may execute one of them (not on a rerun after a
# superuser's run revoked them all).
for s in $services; do
	psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "shop_$s" --set=role="shop_$s" <<'SQL'
REVOKE ALL ON DATABASE :"DBNAME" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"DBNAME" TO :"role", shop_relay;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO :"role";
GRANT USAGE ON SCHEMA public TO shop_relay;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
SELECT rolsuper AS superuser FROM pg_roles WHERE rolname = current_user \gset
\if :superuser
SELECT format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', oid::regprocedure)
	FROM pg_proc
	WHERE pronamespace = 'pg_catalog'::regnamespace
		AND (proname IN ('lo_creat', 'lo_create', 'lo_from_bytea', 'lo_import')
			OR proname ~ '^pg_(try_)?advisory_(xact_)?lock(_shared)?$') \gexec
SELECT format('GRANT EXECUTE ON FUNCTION %s TO %I', oid::regprocedure, :'role')
	FROM pg_proc
	WHERE pronamespace = 'pg_catalog'::regnamespace AND proname ~ '^pg_(try_)?advisory_(xact_)?lock(_shared)?$' \gexec
\else
-- Said only where PUBLIC still may execute one of them: not after a
-- superuser's run revoked them. A NULL proacl is PostgreSQL's default,
-- which grants PUBLIC (grantee 0 in aclexplode).
SELECT EXISTS (SELECT FROM pg_proc
	WHERE pronamespace = 'pg_catalog'::regnamespace
		AND (proname IN ('lo_creat', 'lo_create', 'lo_from_bytea', 'lo_import')
			OR proname ~ '^pg_(try_)?advisory_(xact_)?lock(_shared)?$')
		AND (proacl IS NULL
			OR EXISTS (SELECT FROM aclexplode(proacl) a WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'))) AS public_executes \gset
\if :public_executes
\warn 10-shop.sh: not a superuser, so in :DBNAME every role that may connect (shop_relay among them) can still create large objects and take advisory locks (docs/security.md, Database roles)
\endif
\endif
SQL
done

# A reader's role may connect to its service's database and use its
# schema; which tables it reads the service's migration *_reader_grants.sql
# grants, as the service's role, once they exist. Its sessions start
# read-only (default_transaction_read_only, applied at every session's
# start, through a pooler too): a write that a mistaken grant would allow
# is refused anyway, unless the session sets it off (docs/security.md,
# "Database roles", says what it does not refuse). Large objects and
# advisory locks are refused to it by the loop above, where a superuser
# runs this.
for r in $readers; do
	psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "shop_$r" --set=reader="shop_${r}_reader" <<'SQL'
GRANT CONNECT ON DATABASE :"DBNAME" TO :"reader";
GRANT USAGE ON SCHEMA public TO :"reader";
ALTER ROLE :"reader" SET default_transaction_read_only = on;
SQL
done

# Outside the readers' own databases: by PostgreSQL's defaults PUBLIC, and so
# each readers' role, may connect to the databases postgres and template1
# and create large objects there (the REVOKEs above are each database's
# own), and temporary tables in postgres (initdb grants PUBLIC only CONNECT
# on template1), and a session's sorts and hashes may spill
# temporary files without a limit (temp_file_limit = -1), in its own
# database too, read-only or not: disk a reader could fill. CONNECT and
# TEMPORARY on both are revoked from PUBLIC and CONNECT on postgres granted
# back to the one role that logs in there, shop_monitor (postgres-exporter;
# the functions log in there only with DATABASE_CREATE=true, a developer
# machine's, as postgres; the scripts themselves as the superuser), and
# each readers' role gets temp_file_limit = 1GB (and loses a setting of its
# own in one database that lifts it there, -1): a superuser's setting
# (PGC_SUSET), so its sessions cannot raise it; its queries read a page of
# products, stock or search documents at a time, megabytes at the most.
# So does shop_relay, which may connect to all five databases, where a
# query that reads no table (a sort of generate_series, say) spills as much
# as any: its own queries read a batch of the outbox (RELAY_BATCH_SIZE rows,
# 10000 at most, through the index outbox_pending: a top-N sort at worst,
# in memory), the consumers' retentions (inbox_retentions, a row each) and
# delete in batches of 5000 rows found through an index (outbox,
# processed_events, notifications, order_sales): no temporary file near
# the limit.
# A database's own setting (ALTER DATABASE ... SET temp_file_limit = -1)
# lifts none of these limits: PostgreSQL applies a role's setting in that
# database, then the role's own, then the database's, then ALTER ROLE
# ALL's, then the server's configuration,
# the first found winning (pg_db_role_setting; postinit.c's
# process_settings), and each of these roles has its own 1GB; where it has
# none (another administrator's run), it is warned of as unlimited
# already. So the database's rows are not read (dev/deploycheck
# TestADatabasesTempFileLimitLiftsNoRoleTheScriptsLimit).
# A superuser's change alone (the databases belong to the bootstrap
# superuser), so another administrator is told what stays open.
reader_roles=$(for r in $readers; do printf 'shop_%s_reader ' "$r"; done)
# lifts is the SQL test, of c (one of a role's settings, 'name=value'),
# that c lifts temp_file_limit; it is used three times below. PostgreSQL
# stores the value as written and reads it (guc.c's parse_int and
# convert_to_base_unit) as strtod's number times its unit, a fractional
# kB, MB, GB or TB first rounded to a whole number of the next smaller
# unit (B, kB, MB, GB), then rounded to whole kB, each half to even
# (rint, as round() of a float8 does): a lift is a negative value read as
# -1 ('-1', '-1kB', '-1024B', ' -1', '-0.6', '-513B', '-0.5005kB'); one
# read as 0 ('-0', '-0.4', '-512B', '-0.5004kB', and every negative GB or
# TB value PostgreSQL accepts: '-0.0004GB' is -0.4096 MB, 0 MB, while
# '-0.0005GB' is -1 MB, out of range) is the strictest limit. Tried with
# SET on PostgreSQL 15. Its integer parser (strtol with base 0, strtod
# after a point) also takes hexadecimal ('-0x1' is -1, '-0x0' and '-0x0.8'
# are 0) and reads a leading 0 as octal ('-0777B' is -511 B, so 0): the
# expression reads no hexadecimal, which counts as a lift, and reads octal
# digits as decimal, a larger number, so it errs toward a lift alone,
# never taking a -1 for a limit (such a 0 in one database is reset to the
# role's 1GB, or warned of). Reading them as PostgreSQL does would take
# strtol's and hexadecimal strtod's rules here, for spellings no one writes.
lifts=$(cat <<'SQL'
(c ~ '^temp_file_limit=\s*-' AND coalesce((SELECT round(CASE v.unit WHEN 'B' THEN v.n / 1024
		WHEN 'kB' THEN round(v.n * 1024) / 1024 WHEN 'MB' THEN v.n * 1024
		WHEN 'GB' THEN round(v.n * 1024) * 1024 WHEN 'TB' THEN round(v.n * 1024) * 1048576 ELSE v.n END) <= -1
	FROM (SELECT m[1]::float8 AS n, m[2] AS unit
		FROM regexp_match(c, '^temp_file_limit=\s*(-[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)\s*([kMGT]?B)?\s*$') m) v), true))
SQL
)
psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres --set=readers="$reader_roles" \
	--set=limited="shop_relay $reader_roles" --set=lifts="$lifts" <<'SQL'
SELECT rolsuper AS superuser FROM pg_roles WHERE rolname = current_user \gset
\if :superuser
REVOKE CONNECT, TEMPORARY ON DATABASE postgres, template1 FROM PUBLIC;
GRANT CONNECT ON DATABASE postgres TO shop_monitor;
SELECT format('ALTER ROLE %I SET temp_file_limit = %L', r, '1GB')
	FROM unnest(string_to_array(trim(:'limited'), ' ')) r \gexec
-- A role's setting in one database (ALTER ROLE ... IN DATABASE ... SET)
-- overrides its setting for every database there: one that lifts the limit
-- is reset, so the 1GB holds there too; any other value, a limit still, an
-- operator's, is left as it is: :lifts (the shell's lifts, which says how
-- PostgreSQL reads a stored value) tells a lift, a value read as -1, from
-- one read as 0 ('-0', '-0.4', '-0.0004GB': the strictest limit).
SELECT format('ALTER ROLE %I IN DATABASE %I RESET temp_file_limit', r, d.datname)
	FROM unnest(string_to_array(trim(:'limited'), ' ')) r
		JOIN pg_db_role_setting s ON s.setrole = r::regrole
		JOIN pg_database d ON d.oid = s.setdatabase
	WHERE EXISTS (SELECT FROM unnest(s.setconfig) c WHERE :lifts)
	ORDER BY 1 \gexec
\else
-- Says only what still holds: nothing after a superuser's run closed it
-- all, the part put back since (PUBLIC's CONNECT granted again, a limit
-- reset) alone. has_database_privilege counts PUBLIC's CONNECT and
-- TEMPORARY as a reader's own (a NULL datacl is PostgreSQL's default,
-- which grants PUBLIC both). A role's limit is its pg_db_role_setting for
-- every database (setdatabase 0); one that :lifts (read as -1: -1, -1kB,
-- -1024B, -0.6) is none ('-0', '-0.4' or '-0.0004GB' is 0, a limit). Its setting in one database overrides that one
-- there: a negative one there lifts the limit in that database alone,
-- which is said of a role limited everywhere else.
WITH readers AS (
	SELECT r FROM unnest(string_to_array(trim(:'readers'), ' ')) r
), open AS (
	SELECT d, array_agg(r ORDER BY r) AS rs, bool_and(has_database_privilege(r, d, 'TEMPORARY')) AS temporary
		FROM readers, unnest(ARRAY['postgres', 'template1']) d
		WHERE has_database_privilege(r, d, 'CONNECT')
		GROUP BY d
), unlimited AS (
	SELECT r FROM unnest(string_to_array(trim(:'limited'), ' ')) r
		WHERE NOT EXISTS (SELECT FROM pg_db_role_setting s, unnest(s.setconfig) c
			WHERE s.setdatabase = 0 AND s.setrole = r::regrole
				AND c LIKE 'temp_file_limit=%' AND NOT :lifts)
), unlimited_in AS (
	SELECT r, string_agg(d.datname, ' and ' ORDER BY d.datname) AS ds
		FROM unnest(string_to_array(trim(:'limited'), ' ')) r
			JOIN pg_db_role_setting s ON s.setrole = r::regrole
			JOIN pg_database d ON d.oid = s.setdatabase
		WHERE EXISTS (SELECT FROM unnest(s.setconfig) c WHERE :lifts) AND r NOT IN (SELECT r FROM unlimited)
		GROUP BY r
), connecting AS (
	SELECT format('%s can still connect to %s (and create %s)',
			CASE WHEN rs @> (SELECT array_agg(r) FROM readers) THEN 'the reader roles' ELSE array_to_string(rs, ' and ') END,
			string_agg(d, ' and ' ORDER BY d),
			CASE WHEN bool_and(temporary) THEN 'temporary tables and large objects there'
				WHEN bool_or(temporary) THEN 'large objects there, and temporary tables in '
					|| string_agg(d, ' and ' ORDER BY d) FILTER (WHERE temporary)
				ELSE 'large objects there' END) AS part
		FROM open
		GROUP BY rs
), spilling AS (
	SELECT concat_ws(' and ',
			(SELECT string_agg(r, ' and ' ORDER BY r) FROM unlimited WHERE r NOT IN (SELECT r FROM readers)),
			CASE WHEN NOT EXISTS (SELECT FROM readers WHERE r NOT IN (SELECT r FROM unlimited)) THEN 'the reader roles'
				ELSE (SELECT string_agg(r, ' and ' ORDER BY r) FROM unlimited JOIN readers USING (r)) END)
		|| ' can still spill temporary files without a limit' AS part
		WHERE EXISTS (SELECT FROM unlimited)
), spilling_in AS (
	SELECT string_agg(format('%s can still spill temporary files without a limit in %s', r, ds), ', and ' ORDER BY r) AS part
		FROM unlimited_in
)
SELECT still_open, still_open <> '' AS warn
	FROM concat_ws(', and ', (SELECT string_agg(part, ', and ' ORDER BY part) FROM connecting), (SELECT part FROM spilling),
		(SELECT part FROM spilling_in)) still_open \gset
\if :warn
\warn 10-shop.sh: not a superuser, so :still_open (docs/security.md, Database roles)
\endif
\endif
SQL
