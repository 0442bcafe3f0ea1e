#!/bin/sh
# The image's entrypoint, after the official nginx image's: renders
# /etc/nginx/templates/*.template into /etc/nginx/conf.d/*.conf with
# envsubst, then runs the command (nginx -g 'daemon off;').
#
# Only ${VAR}s set in the environment are replaced, so nginx's own
# $variables stay as they are.  NGINX_LOCAL_RESOLVERS, unless set, is
# the name servers of /etc/resolv.conf (for the provider's name).
set -eu

templates=${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}
output=${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}

if [ -z "${NGINX_LOCAL_RESOLVERS:-}" ]; then
    NGINX_LOCAL_RESOLVERS=$(awk '$1 == "nameserver" {
            printf "%s ", ($2 ~ /:/ ? "[" $2 "]" : $2) }' \
        /etc/resolv.conf 2>/dev/null || true)
    # glibc's own default when resolv.conf names none
    NGINX_LOCAL_RESOLVERS=${NGINX_LOCAL_RESOLVERS:-127.0.0.1}
    export NGINX_LOCAL_RESOLVERS
fi

# set, even empty, so that the template's ${LLM_PROVIDER_KEY} is replaced
export LLM_PROVIDER_KEY="${LLM_PROVIDER_KEY:-}"
if [ "${1:-}" = nginx ] && [ -z "$LLM_PROVIDER_KEY" ]; then
    echo "$0: LLM_PROVIDER_KEY is not set: the provider gets no key" >&2
fi

if [ -d "$templates" ]; then
    # "${A} ${B} ...": every variable in the environment, for envsubst
    defined=$(awk 'END { for (name in ENVIRON) printf "${%s} ", name }' \
              < /dev/null)
    for tpl in "$templates"/*.template; do
        [ -f "$tpl" ] || continue
        conf="$output/$(basename "$tpl" .template)"
        envsubst "$defined" < "$tpl" > "$conf"
    done
fi

exec "$@"
