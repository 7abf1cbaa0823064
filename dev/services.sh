#!/usr/bin/env bash
# make services: start PostgreSQL, Redis and RabbitMQ on 127.0.0.1 when they
# are not running (installing Debian's packages when missing), and set up the
# PostgreSQL authentication the shop needs explicitly: trust for the postgres
# user over TCP from 127.0.0.1 (a development machine and CI only). .ci/run
# sources it; production gets its services from docker-compose.yml. Starting
# or installing a service, or setting the authentication, needs root on a
# Debian machine (apt-get, pg_ctlcluster, /var/lib/redis, pg_hba.conf).
set -euo pipefail

# PG_CONF_DIR is Debian's PostgreSQL configuration directory (a test points
# it elsewhere).
PG_CONF_DIR="${PG_CONF_DIR:-/etc/postgresql}"

log() { printf '[services] %s\n' "$*"; }

port_open() { (echo >"/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1; }

wait_port() { # name port seconds
	local i
	for ((i = 0; i < $3 * 2; i++)); do
		port_open "$2" && { log "$1 is up on 127.0.0.1:$2"; return 0; }
		sleep 0.5
	done
	log "$1 did not come up on 127.0.0.1:$2"; return 1
}

# pg_cluster prints "<version> <name>" of the Debian cluster on port 5432:
# the one pg_lsclusters lists when it is installed (nothing when it lists none
# on 5432: another cluster's configuration is never touched), else the
# lexically first version under PG_CONF_DIR and "main"; nothing when neither
# finds one.
pg_cluster() {
	local found=""
	if command -v pg_lsclusters >/dev/null; then
		found="$(pg_lsclusters --no-header 2>/dev/null | awk '$3 == 5432 { print $1, $2; exit }')" || found=""
	elif [ -d "$PG_CONF_DIR" ]; then
		found="$(ls "$PG_CONF_DIR" | head -n1)"
		[ -n "$found" ] && found="$found main"
	fi
	[ -n "$found" ] && printf '%s\n' "$found"
	return 0
}

ensure_postgres() {
	port_open 5432 && return 0
	log "starting PostgreSQL"
	if ! command -v pg_ctlcluster >/dev/null; then
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
	fi
	local cluster
	cluster="$(pg_cluster)"
	# shellcheck disable=SC2086 # "<version> <name>", two words
	[ -n "$cluster" ] && pg_ctlcluster --skip-systemctl-redirect $cluster start || true
	wait_port PostgreSQL 5432 60
}

ensure_redis() {
	port_open 6379 && return 0
	log "starting Redis"
	if ! command -v redis-server >/dev/null; then
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
	fi
	mkdir -p /var/lib/redis /var/log/redis
	redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
		--dir /var/lib/redis --logfile /var/log/redis/ci.log
	wait_port Redis 6379 30
}

ensure_rabbitmq() {
	port_open 5672 && return 0
	log "starting RabbitMQ"
	if ! command -v rabbitmq-server >/dev/null; then
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
	fi
	rabbitmq-server -detached || true
	wait_port RabbitMQ 5672 120
}

# ensure_pg_auth: the postgres user logs in without a password from
# 127.0.0.1, as env/development.yml's URLs expect. Only when it does not
# already: then a trust line goes first in pg_hba.conf and the cluster reloads.
ensure_pg_auth() {
	if ! command -v psql >/dev/null; then
		log "psql is missing: install PostgreSQL's client (apt-get install postgresql-client) so that the postgres login from 127.0.0.1 can be checked"
		return 1
	fi
	psql -h 127.0.0.1 -U postgres -d postgres -w -Atc 'select 1' >/dev/null 2>&1 && return 0
	local ver name hba
	read -r ver name <<<"$(pg_cluster)" || true
	hba="$PG_CONF_DIR/$ver/$name/pg_hba.conf"
	if [ -z "$ver" ] || [ ! -f "$hba" ]; then
		log "PostgreSQL on 127.0.0.1:5432 refuses postgres without a password, and no Debian cluster's pg_hba.conf was found (pg_lsclusters, $PG_CONF_DIR): allow postgres from 127.0.0.1 with trust yourself"
		return 1
	fi
	log "setting trust for postgres from 127.0.0.1 in $hba"
	sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
	pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload
	psql -h 127.0.0.1 -U postgres -d postgres -w -Atc 'select 1' >/dev/null || { log "PostgreSQL still refuses postgres from 127.0.0.1"; return 1; }
}

ensure_services() {
	ensure_postgres
	ensure_pg_auth
	ensure_redis
	ensure_rabbitmq
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	ensure_services
	log "PostgreSQL, Redis and RabbitMQ answer on 127.0.0.1"
fi
