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
#     env/kubernetes.yml. A host: or port: line is rewritten with its value
#     quoted or not, with trailing blanks or a comment, which it keeps (the
#     quotes too); a key written otherwise (quoted, a blank before its colon,
#     in a flow mapping) is not rewritten but refused (below);
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
# The Redis password stays {vault://env/shop-redis-password}: Kong resolves
# it from SHOP_REDIS_PASSWORD (the Secret kong-credentials).
# KONG_YML and OUT name other files (tests; gateway/kong.yml and
# deploy/kubernetes/kong/kong.yml unless set).
# It writes nothing, and exits non-zero naming why, when JWT_VERIFY_KEY holds
# no PEM public key, when a step fails, and when the result still names one
# of faasd's services: a gateway or jaeger URL its replacements missed, the
# vault reference to the verify key, a host: redis or (REDIS_PORT set to
# another port) a port: 6379 however written ("host": redis, host : redis,
# a flow-style {host: redis} included). Its temporary files, OUT.tmp and OUT.tmp.tls, go on every exit
# but the one that renames OUT.tmp to OUT.
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
case $REDIS_HOST$REDIS_PORT$OTLP_ENDPOINT in
*'|'* | *'\'* | *'&'*) echo "render-config.sh: REDIS_HOST, REDIS_PORT and OTLP_ENDPOINT may not hold |, \\ or &" >&2; exit 1 ;;
esac
grep -q -- '-----BEGIN PUBLIC KEY-----' "$JWT_VERIFY_KEY" || {
	echo "render-config.sh: $JWT_VERIFY_KEY holds no PEM public key" >&2
	exit 1
}
key=$(sed -n '1,/-----END PUBLIC KEY-----/p' "$JWT_VERIFY_KEY" | awk '{printf "%s\\\\n", $0}')
tmp=$OUT.tmp
trap 'rm -f "$tmp" "$tmp.tls"' EXIT
# dash runs the EXIT trap on exit, not when a signal kills it.
trap 'exit 1' HUP INT TERM
# A host: or port: line's value, quoted or not (\2), then trailing blanks or
# a comment (\3, kept).
value='[[:blank:]]\{1,\}\(["'"'"']\{0,1\}\)'
rest='\2\(\([[:blank:]]\{1,\}#.*\)\{0,1\}\)[[:blank:]]*$'
sed -e 's|http://gateway:8080/|http://gateway.openfaas:8080/|' \
	-e "s|^\( *\)host:${value}redis$rest|\1host: \2$REDIS_HOST\2\3|" \
	-e "s|^\( *\)port:${value}6379$rest|\1port: \2$REDIS_PORT\2\3|" \
	-e "s|http://jaeger:4318/|${OTLP_ENDPOINT%/}/|" \
	-e "s|{vault://env/shop-jwt-verify-key}|$key|" \
	"$KONG_YML" >"$tmp"
if [ "$REDIS_TLS" = true ]; then
	awk -v host="$REDIS_HOST" '
	{ print; line = $0; sub(/^ +/, "", line) }
	line == "password: \"{vault://env/shop-redis-password}\"" {
		indent = $0; sub(/[^ ].*/, "", indent)
		print indent "ssl: true"; print indent "ssl_verify: true"; print indent "server_name: " host
	}' "$tmp" >"$tmp.tls"
	mv "$tmp.tls" "$tmp"
fi
# host: redis and port: 6379 as a key of a block or a flow mapping, key and
# value quoted or not, blanks before the colon or not, followed by a blank, a
# comment, the mapping's , or } or nothing.
lead='(^|[[:blank:]{,])'
end='["'"'"']?([[:blank:]]|[,}]|$)'
set -- -e '//gateway:' -e "${lead}[\"']?host[\"']?[[:blank:]]*:[[:blank:]]+[\"']?redis$end" -e '//jaeger:' -e 'vault://env/shop-jwt-verify-key'
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
