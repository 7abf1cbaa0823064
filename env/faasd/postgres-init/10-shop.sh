#!/bin/sh
# First start of the postgres service (docker-compose.yml): the official image
# runs this once, when the data directory is empty, as the superuser. It
# creates the login role `shop` with the password of the secret file
# /run/secrets/db-password and one database per service owned by it, with
# pg_trgm (catalog search) available, and the login role `shop_monitor`
# (pg_monitor: statistics only, no table) with the password of
# /run/secrets/postgres-monitor-password, for the postgres-exporter service. Schemas are created by the functions'
# migrations at start (DATABASE_CREATE=false in production).
set -eu

# Read into a variable first: a failed $(cat ...) inside psql's arguments
# would not stop the script (set -e ignores it there) and the role would get
# an empty password. The script runs as the postgres user (uid 999), so the
# file must be readable by it (docs/deploy-faasd.md, step 3).
# The variables are for dev/deploycheck's test.
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
password=$(read_password "${SHOP_DB_PASSWORD_FILE:-/run/secrets/db-password}") || exit 1
monitor_password=$(read_password "${SHOP_MONITOR_PASSWORD_FILE:-/run/secrets/postgres-monitor-password}") || exit 1

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
	--set=password="$password" --set=monitor_password="$monitor_password" <<'SQL'
CREATE ROLE shop LOGIN PASSWORD :'password';
CREATE ROLE shop_monitor LOGIN PASSWORD :'monitor_password' IN ROLE pg_monitor;
CREATE DATABASE shop_users OWNER shop;
CREATE DATABASE shop_catalog OWNER shop;
CREATE DATABASE shop_orders OWNER shop;
CREATE DATABASE shop_inventory OWNER shop;
CREATE DATABASE shop_payments OWNER shop;
SQL

for db in shop_users shop_catalog shop_orders shop_inventory shop_payments; do
	psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$db" <<'SQL'
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT ALL ON SCHEMA public TO shop;
ALTER SCHEMA public OWNER TO shop;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
SQL
done
