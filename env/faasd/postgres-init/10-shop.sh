#!/bin/sh
# First start of the postgres service (docker-compose.yml): the official image
# runs this once, when the data directory is empty, as the superuser. It
# creates one database per service, shop_<service>, each owned by a login
# role of its own, shop_<service>, with the password of the secret file
# db-password-<service>, and no other role but the relay's may connect to
# it: a function holds its service's secret alone (stack.yml), so whatever
# it is made to do, it reaches one database (docs/security.md, "Database
# roles"). The login role shop_relay (secret db-password-relay) may connect
# to every service database; what it may do there (read and mark the
# outbox, delete old rows) each service's migration *_relay_grants.sql
# grants it once the tables exist. pg_trgm (catalog search) is available in
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
# creates what is missing and leaves what exists (a role's password is set
# at every run, from its file: the files are what the functions read, so a
# rerun also repairs a role whose password was changed by hand). A
# non-superuser may create a database owned by a role, or give it a schema,
# only as a member of that role (PostgreSQL 15), so such an administrator
# is granted each service role first and stays a member. On a cluster laid
# out before the role split (a shop_<service> database owned by another
# role, shop) it stops before changing anything and points to
# env/faasd/postgres-upgrade/split-roles.sh, the upgrade of such a cluster.
set -eu

# Read into a variable first: a failed $(cat ...) inside psql's arguments
# would not stop the script (set -e ignores it there) and the role would get
# an empty password. The script runs as the postgres user (uid 999), so the
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
services="users catalog orders inventory payments"
secrets=${SHOP_SECRETS_DIR:-/run/secrets}
# Every file is read before the first psql: one that is missing creates no
# role at all (the data directory is not initialised again on the next start).
for s in $services relay; do
	p=$(read_password "$secrets/db-password-$s") || exit 1
	eval "${s}_password=\$p"
done
monitor_password=$(read_password "$secrets/postgres-monitor-password") || exit 1

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
	--set=users_password="$users_password" --set=catalog_password="$catalog_password" \
	--set=orders_password="$orders_password" --set=inventory_password="$inventory_password" \
	--set=payments_password="$payments_password" --set=relay_password="$relay_password" \
	--set=monitor_password="$monitor_password" <<'SQL'
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
SELECT format('CREATE ROLE %I LOGIN', r)
	FROM unnest(ARRAY['shop_monitor', 'shop_relay', 'shop_users', 'shop_catalog', 'shop_orders', 'shop_inventory', 'shop_payments']) r
	WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) \gexec
ALTER ROLE shop_monitor PASSWORD :'monitor_password';
ALTER ROLE shop_relay PASSWORD :'relay_password';
ALTER ROLE shop_users PASSWORD :'users_password';
ALTER ROLE shop_catalog PASSWORD :'catalog_password';
ALTER ROLE shop_orders PASSWORD :'orders_password';
ALTER ROLE shop_inventory PASSWORD :'inventory_password';
ALTER ROLE shop_payments PASSWORD :'payments_password';
SELECT 'GRANT pg_monitor TO shop_monitor' WHERE NOT pg_has_role('shop_monitor', 'pg_monitor', 'MEMBER') \gexec
SELECT format('GRANT %I TO CURRENT_USER', r)
	FROM unnest(ARRAY['shop_users', 'shop_catalog', 'shop_orders', 'shop_inventory', 'shop_payments']) r
	WHERE NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AND NOT pg_has_role(r, 'MEMBER') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', r, r)
	FROM unnest(ARRAY['shop_users', 'shop_catalog', 'shop_orders', 'shop_inventory', 'shop_payments']) r
	WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = r) \gexec
SQL

# PUBLIC may connect to a new database (and create temporary tables in it):
# each service database is its own role's and the relay's alone.
for s in $services; do
	psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "shop_$s" --set=role="shop_$s" <<'SQL'
REVOKE ALL ON DATABASE :"DBNAME" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"DBNAME" TO :"role", shop_relay;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO :"role";
GRANT USAGE ON SCHEMA public TO shop_relay;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
SQL
done
