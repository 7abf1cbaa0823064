#!/bin/sh
# Renders Kong's declarative configuration for Kubernetes from
# gateway/kong.yml into deploy/kubernetes/kong/kong.yml, which
# kustomization.yaml turns into the ConfigMap kong-config
# (docs/deploy-kubernetes.md, "Kong as ingress"). Run it from the
# repository's root, again after every change of gateway/kong.yml and every
# rotation of the token keys, then kubectl apply -k deploy/kubernetes:
#
#   REDIS_HOST=redis.example.internal \
#   OTLP_ENDPOINT=http://jaeger.observability.svc.cluster.local:4318 \
#     sh deploy/kubernetes/kong/render-config.sh
#
# What it changes, nothing else (dev/kubecheck checks that undoing these
# gives gateway/kong.yml back):
#   - every service's http://gateway:8080 becomes http://gateway.openfaas:8080
#     (a short name resolves only in Kong's own namespace, and the gateway is
#     the Service gateway of openfaas);
#   - the rate limits' Redis, host redis and port 6379 on faasd, becomes
#     REDIS_HOST and REDIS_PORT (6379 unless set): REDIS_ADDR's of
#     env/kubernetes.yml. A host: or port: line of a redis: block is
#     rewritten with its value quoted or not, with trailing blanks or a
#     comment, which it keeps (the quotes too); a line outside a redis:
#     block is left as it is, and a key written otherwise (quoted, a blank
#     before its colon, in a flow mapping) is not rewritten: either is
#     refused (below) when it names another host or port than asked for;
#   - the opentelemetry plugin's http://jaeger:4318 becomes OTLP_ENDPOINT
#     (OTEL_EXPORTER_OTLP_ENDPOINT of env/kubernetes.yml);
#   - the jwt credential's {vault://env/shop-jwt-verify-key} becomes the
#     public key of JWT_VERIFY_KEY (secrets/jwt-verify-key unless set), as
#     docs/deploy-faasd.md step 4 renders it: Kong 3.9 does not resolve a
#     vault reference in a jwt credential. A public key, so the ConfigMap may
#     hold it; Kong never gets jwt-signing-key.
#   - with REDIS_TLS=true (as env/kubernetes.yml for a Redis that requires
#     TLS), every rate limit's redis block gets ssl: true, ssl_verify: true
#     and server_name: REDIS_HOST after its password line (Kong 3.9's
#     kong/tools/redis/schema.lua; the certificate is checked against Kong's
#     lua_ssl_trusted_certificate, docs/deploy-kubernetes.md). There is no
#     TLS without verification.
# The Redis password stays {vault://env/shop-redis-kong-password}: Kong resolves
# it from SHOP_REDIS_KONG_PASSWORD (the Secret kong-credentials).
# KONG_YML and OUT name other files (tests; gateway/kong.yml and
# deploy/kubernetes/kong/kong.yml unless set).
# It writes nothing, and exits non-zero naming why, when REDIS_HOST is empty
# or holds anything but a host name's letters, digits, dots and hyphens, when
# REDIS_PORT is not a port number (1 to 65535, digits only, no leading zero),
# when REDIS_TLS is true and REDIS_HOST has no dot (not the name a
# certificate is for: below), when JWT_VERIFY_KEY holds
# no PEM public key, when a step fails, and when the result still names one
# of faasd's services: a gateway or jaeger URL its replacements missed, the
# vault reference to the verify key, a host: redis (REDIS_HOST set to
# another host) or a port: 6379 (REDIS_PORT set to another port) however
# written ("host": redis, host : redis, a flow-style {host: redis}, a line
# outside a redis: block included). Its temporary files, OUT.tmp,
# OUT.tmp.redis and OUT.tmp.tls, go on every exit but the one that renames
# OUT.tmp to OUT.
set -eu
: "${REDIS_HOST:?set REDIS_HOST to your Redis host (REDIS_ADDR of env/kubernetes.yml without the port)}"
: "${OTLP_ENDPOINT:?set OTLP_ENDPOINT to your OTLP/HTTP collector (OTEL_EXPORTER_OTLP_ENDPOINT of env/kubernetes.yml)}"
REDIS_PORT=${REDIS_PORT:-6379}
REDIS_TLS=${REDIS_TLS:-false}
case $REDIS_TLS in
true | false) ;;
*) echo "render-config.sh: REDIS_TLS must be true or false" >&2; exit 1 ;;
esac
JWT_VERIFY_KEY=${JWT_VERIFY_KEY:-secrets/jwt-verify-key}
KONG_YML=${KONG_YML:-gateway/kong.yml}
OUT=${OUT:-deploy/kubernetes/kong/kong.yml}
# REDIS_HOST and REDIS_PORT go into every redis: block: a host name and a
# port number, nothing else (a newline, from a grep that matched two lines,
# would add lines of YAML to each block; a colon is REDIS_ADDR's port left on).
case $REDIS_HOST in
*[!abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-]*)
	echo "render-config.sh: REDIS_HOST must be a host name: letters, digits, dots and hyphens only (no port, no blank or newline)" >&2
	exit 1
	;;
esac
# With TLS, Kong checks Redis's certificate for server_name, REDIS_HOST: a
# name without a dot (an ExternalName alias such as redis) is not the name a
# managed Redis's certificate is for, every count would fail verification,
# and fault_tolerant would let every request through.
case $REDIS_TLS:$REDIS_HOST in
true:*.*) ;;
true:*)
	echo "render-config.sh: with REDIS_TLS=true, REDIS_HOST must be the name Redis's certificate is for (it becomes server_name), not a short name without a dot such as an ExternalName alias" >&2
	exit 1
	;;
esac
case $REDIS_PORT in
'' | 0* | *[!0123456789]*) port_ok=false ;;
*) if [ "${#REDIS_PORT}" -le 5 ] && [ "$REDIS_PORT" -le 65535 ]; then port_ok=true; else port_ok=false; fi ;;
esac
if [ "$port_ok" = false ]; then
	echo "render-config.sh: REDIS_PORT must be a port number, 1 to 65535, digits only without a leading zero" >&2
	exit 1
fi
case $OTLP_ENDPOINT in
*'|'* | *'\'* | *'&'*) echo "render-config.sh: OTLP_ENDPOINT may not hold |, \\ or &" >&2; exit 1 ;;
esac
grep -q -- '-----BEGIN PUBLIC KEY-----' "$JWT_VERIFY_KEY" || {
	echo "render-config.sh: $JWT_VERIFY_KEY holds no PEM public key" >&2
	exit 1
}
key=$(sed -n '1,/-----END PUBLIC KEY-----/p' "$JWT_VERIFY_KEY" | awk '{printf "%s\\\\n", $0}')
tmp=$OUT.tmp
trap 'rm -f "$tmp" "$tmp.redis" "$tmp.tls"' EXIT
# dash runs the EXIT trap on exit, not when a signal kills it.
trap 'exit 1' HUP INT TERM
# The rate limits' Redis: the host: redis and port: 6379 lines of a redis:
# block (a line redis:, alone or with a comment, and the lines below it
# indented deeper; blank and comment lines do not end it), and no other
# line. A line's value is quoted or not; trailing blanks go, a comment is
# kept, and so are the quotes.
awk -v host="$REDIS_HOST" -v port="$REDIS_PORT" '
function rewrite(line, key, from, to,    ind, rest, q, n) {
	ind = line
	sub(/[^ ].*/, "", ind)
	rest = substr(line, length(ind) + 1)
	if (substr(rest, 1, length(key) + 1) != key ":") return line
	rest = substr(rest, length(key) + 2)
	if (rest !~ /^[ \t]/) return line
	sub(/^[ \t]+/, "", rest)
	q = substr(rest, 1, 1)
	if (q != "\"" && q != "\047") q = ""
	n = 2 * length(q) + length(from)
	if (substr(rest, 1, n) != q from q) return line
	rest = substr(rest, n + 1)
	if (rest ~ /^[ \t]*$/) rest = ""
	else if (rest !~ /^[ \t]+#/) return line
	return ind key ": " q to q rest
}
BEGIN { block = -1 }
{
	line = $0
	ind = match(line, /[^ ]/) - 1
	if (block >= 0 && line !~ /^[ \t]*(#.*)?$/ && ind <= block) block = -1
	if (block >= 0) {
		line = rewrite(line, "host", "redis", host)
		line = rewrite(line, "port", "6379", port)
	}
	if (line ~ /^ *redis:[ \t]*(#.*)?$/) block = ind
	print line
}' "$KONG_YML" >"$tmp.redis"
sed -e 's|http://gateway:8080/|http://gateway.openfaas:8080/|' \
	-e "s|http://jaeger:4318/|${OTLP_ENDPOINT%/}/|" \
	-e "s|{vault://env/shop-jwt-verify-key}|$key|" \
	"$tmp.redis" >"$tmp"
rm -f "$tmp.redis"
if [ "$REDIS_TLS" = true ]; then
	awk -v host="$REDIS_HOST" '
	{ print; line = $0; sub(/^ +/, "", line) }
	line == "password: \"{vault://env/shop-redis-kong-password}\"" {
		indent = $0; sub(/[^ ].*/, "", indent)
		print indent "ssl: true"; print indent "ssl_verify: true"; print indent "server_name: " host
	}' "$tmp" >"$tmp.tls"
	mv "$tmp.tls" "$tmp"
fi
# host: redis and port: 6379 as a key of a block or a flow mapping, key and
# value quoted or not, blanks before the colon or not, followed by a blank, a
# comment, the mapping's , or } or nothing: each only when it is not the
# value asked for (REDIS_HOST redis, an ExternalName Service of that name in
# Kong's namespace, say, or REDIS_PORT 6379), as a line left then names it.
lead='(^|[[:blank:]{,])'
end='["'"'"']?([[:blank:]]|[,}]|$)'
set -- -e '//gateway:' -e '//jaeger:' -e 'vault://env/shop-jwt-verify-key'
if [ "$REDIS_HOST" != redis ]; then
	set -- "$@" -e "${lead}[\"']?host[\"']?[[:blank:]]*:[[:blank:]]+[\"']?redis$end"
fi
if [ "$REDIS_PORT" != 6379 ]; then
	set -- "$@" -e "${lead}[\"']?port[\"']?[[:blank:]]*:[[:blank:]]+[\"']?6379$end"
fi
if grep -n -E "$@" "$tmp" >&2; then
	echo "render-config.sh: the lines above still name faasd's services" >&2
	exit 1
fi
mv "$tmp" "$OUT"
trap - EXIT
echo "wrote $OUT"
