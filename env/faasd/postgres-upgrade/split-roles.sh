#!/bin/sh
# Upgrade of a PostgreSQL first started before each service had a role of its
# own (docs/deploy-faasd.md, step 7): the five databases and everything in
# them belong to the one login role `shop`. Run once by the superuser inside
# the postgres container, after the new docker-compose.yml mounts the
# db-password-* files (SHOP_SECRETS_DIR [/run/secrets]) and before the new
# functions are deployed. It leaves what 10-shop.sh and the migrations'
# *_relay_grants.sql leave on a new cluster: shop_<service> owns database
# shop_<service> and all in it, only it and shop_relay may connect, and
# shop_relay may read, mark and prune the outbox (and prune the inbox,
# notifications and settled sales, and read the consumers' recorded inbox
# retentions), and the public readers' roles shop_catalog_reader and
# shop_inventory_reader (secrets db-password-catalog-reader,
# db-password-inventory-reader) may connect to their service's database
# and read what the migrations' *_reader_grants.sql grant them, granted
# here too where the tables exist: on a cluster whose databases were
# migrated before the reader roles existed, this script is also the
# upgrade that adds them (docs/deploy-faasd.md, step 7, item 8). Until
# the old functions are replaced, `shop` is made a member of the five
# roles, so they keep working; step 7 then drops it.
# Idempotent: a second run changes nothing, not even a password's hash. As
# with 10-shop.sh, a role's password is set only when the run creates the
# role: setting it again makes a new SCRAM salt, so PgBouncer's auth_file
# secrets would no longer match, and a rerun with stale files would reset
# every password. SHOP_RESET_PASSWORDS=true sets each existing role's
# password again from its file and lets the role log in again (ALTER ROLE
# ... LOGIN PASSWORD): the repair of a password changed by hand or of a
# role made NOLOGIN; a run without it leaves LOGIN as an operator set it.
set -eu

# psql_quoted quotes $1 for a psql \set: a backslash and a quote doubled
# (psql's rules for a single-quoted argument of a meta-command); sed reads
# it from a pipe, printf is a shell builtin.
psql_quoted() {
	printf '%s\n' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g"
}
services="users catalog orders inventory payments"
# The services whose public readers have a role of their own (10-shop.sh).
readers="catalog inventory"
secrets=${SHOP_SECRETS_DIR:-/run/secrets}
case ${SHOP_RESET_PASSWORDS:-false} in
true | false) reset_passwords=${SHOP_RESET_PASSWORDS:-false} ;;
*)
	echo "split-roles.sh: SHOP_RESET_PASSWORDS is true, false or unset, not $SHOP_RESET_PASSWORDS" >&2
	exit 1
	;;
esac
# Every file is read, and its password quoted, before the first psql, as
# 10-shop.sh does: one that is missing or empty creates no role at all.
for s in $services relay $(for r in $readers; do echo "${r}_reader"; done); do
	file=db-password-$s
	case $s in *_reader) file=db-password-${s%_reader}-reader ;; esac
	p=$(cat "$secrets/$file") || {
		echo "split-roles.sh: cannot read $secrets/$file (it must be readable by uid $(id -u))" >&2
		exit 1
	}
	case $p in '' | *[[:space:]]*)
		echo "split-roles.sh: $secrets/$file is empty or holds white space" >&2
		exit 1
		;;
	esac
	# Quoted before psql's input pipe, whose status is psql's alone: a
	# quoting that failed there would set an empty password.
	q=$(psql_quoted "$p") && [ -n "$q" ] || {
		echo "split-roles.sh: cannot quote the password of shop_$s for psql" >&2
		exit 1
	}
	eval "${s}_quoted=\$q"
done

# The passwords reach psql on its standard input, never in its arguments
# (which other local users see in ps), as a psql variable the server sees
# only in the CREATE or ALTER ROLE that sets it: a rerun that changes no
# role sends none. Those statements run with the server's statement
# logging off for them alone: log_statement, the durations
# (log_min_duration_statement), the samples (log_min_duration_sample,
# log_transaction_sample_rate), the STATEMENT line of an error
# (log_min_error_statement) and the statement's text in pg_stat_activity
# (track_activities: a crash's "Failed process was running" and another
# session's deadlock DETAIL log it), each SET right before and RESET
# right after, so a server that logs statements does not write a password,
# and the rest of the script is logged as the operator configured; where
# it may SET it (a superuser), pg_stat_statements.track_utility is turned
# off the same way, so the module, if loaded, keeps no such statement. The
# others are superusers' parameters: an administrator that may not SET one of them
# (PostgreSQL 15 grants it with GRANT SET ON PARAMETER) sets the passwords
# all the same, and is told once that they may be logged (docs/security.md,
# "Database roles"). 10-shop.sh has the same block. An existing role keeps
# its password unless SHOP_RESET_PASSWORDS=true asks (see above); a role
# missing is created with it.
{
	cat <<'SQL'
SELECT bool_and(has_parameter_privilege(current_user, p, 'SET')) AS quiet
	FROM unnest(ARRAY['log_statement', 'log_min_duration_statement', 'log_min_duration_sample',
		'log_transaction_sample_rate', 'log_min_error_statement', 'track_activities']) p \gset
SELECT has_parameter_privilege(current_user, 'pg_stat_statements.track_utility', 'SET') AS untracked \gset
\set warned false
SQL
	for s in $services relay $(for r in $readers; do echo "${r}_reader"; done); do
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
\warn split-roles.sh: not allowed to SET log_statement, log_min_duration_statement, log_min_duration_sample, log_transaction_sample_rate, log_min_error_statement and track_activities, so a server that logs statements may log the passwords this run sets (docs/security.md, Database roles)
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
} | psql -X -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres --set=reset_passwords="$reset_passwords"

# In each service database, as 10-shop.sh does (its comment says why),
# EXECUTE on the functions that create large objects and take advisory
# locks revoked from PUBLIC (the relay's role and the readers' among those
# that may connect), the advisory locks granted back to the service's role,
# whose migrations take one (and so to `shop` while it is a member, whose
# old functions migrate as it): a superuser's change alone, so another
# administrator is told that it left them, where PUBLIC still may execute
# one of them.
for s in $services; do
	# REASSIGN also gives the role every database `shop` still owns: the
	# ALTER DATABASE below puts each back with its own role.
	psql -X -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "shop_$s" --set=role="shop_$s" <<'SQL'
SELECT 'REASSIGN OWNED BY shop TO ' || quote_ident(:'role') WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = 'shop') \gexec
ALTER DATABASE :"DBNAME" OWNER TO :"role";
REVOKE ALL ON DATABASE :"DBNAME" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"DBNAME" TO :"role", shop_relay;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO :"role";
GRANT USAGE ON SCHEMA public TO shop_relay;
SELECT 'GRANT SELECT, DELETE, UPDATE (published_at) ON outbox TO shop_relay' WHERE to_regclass('outbox') IS NOT NULL \gexec
SELECT 'GRANT SELECT, DELETE ON processed_events TO shop_relay' WHERE to_regclass('processed_events') IS NOT NULL \gexec
SELECT 'GRANT SELECT, DELETE ON notifications TO shop_relay' WHERE to_regclass('notifications') IS NOT NULL \gexec
SELECT 'GRANT SELECT, DELETE ON order_sales TO shop_relay' WHERE to_regclass('order_sales') IS NOT NULL \gexec
SELECT 'GRANT SELECT ON inbox_retentions TO shop_relay' WHERE to_regclass('inbox_retentions') IS NOT NULL \gexec
SELECT format('GRANT %I TO shop', :'role') WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = 'shop') \gexec
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
\warn split-roles.sh: not a superuser, so in :DBNAME every role that may connect (shop_relay among them) can still create large objects and take advisory locks (docs/security.md, Database roles)
\endif
\endif
SQL
done

# The readers' roles: CONNECT and the schema, as 10-shop.sh grants them,
# their sessions read-only by default as there, and SELECT on the tables
# their service's *_reader_grants.sql grants, where the tables exist (a
# database migrated past that migration before the role existed got nothing
# from it). These lists are a second copy of the migrations' GRANT SELECT …
# TO shop_<service>_reader: a migration that grants a readers' role another
# table adds it here too (dev/deploycheck
# TestSplitRolesGrantsTheReadersWhatTheMigrationsGrant fails until it does).
# Large objects and advisory locks are refused to them by the loop above.
for r in $readers; do
	case $r in
	catalog) tables="products search_documents schema_migrations" ;;
	inventory) tables="stock schema_migrations" ;;
	esac
	psql -X -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "shop_$r" --set=reader="shop_${r}_reader" \
		--set=tables="$tables" <<'SQL'
GRANT CONNECT ON DATABASE :"DBNAME" TO :"reader";
GRANT USAGE ON SCHEMA public TO :"reader";
ALTER ROLE :"reader" SET default_transaction_read_only = on;
SELECT format('GRANT SELECT ON %I TO %I', t, :'reader')
	FROM unnest(string_to_array(:'tables', ' ')) t
	WHERE to_regclass(quote_ident(t)) IS NOT NULL \gexec
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
psql -X -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres --set=readers="$reader_roles" \
	--set=limited="shop_relay $reader_roles" --set=lifts="$lifts" <<'SQL'
SELECT rolsuper AS superuser FROM pg_roles WHERE rolname = current_user \gset
\if :superuser
REVOKE CONNECT, TEMPORARY ON DATABASE postgres, template1 FROM PUBLIC;
-- A cluster older than the monitor's role has none yet (docs/runbooks/datastores.md, "Upgrading", creates it
-- and grants it CONNECT).
SELECT 'GRANT CONNECT ON DATABASE postgres TO shop_monitor' WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = 'shop_monitor') \gexec
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
\warn split-roles.sh: not a superuser, so :still_open (docs/security.md, Database roles)
\endif
\endif
SQL
