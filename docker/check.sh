#!/usr/bin/env bash
# A quick check of the image recipe, without building the image (that is
# docker/ci-image.sh): the Dockerfile builds the module with
# scripts/build.sh, the script CI builds with, and the image's entrypoint
# renders its templates, with the Dockerfile's default environment, into
# a configuration that Debian's nginx with the module accepts while
# neither Redis nor the provider is reachable.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dockerfile=$repo/docker/Dockerfile

fail() { echo "docker/check.sh: $*" >&2; exit 1; }

grep -qE '^RUN .*/scripts/build\.sh' "$dockerfile" \
    || fail "the Dockerfile no longer builds with scripts/build.sh"

if ! command -v envsubst > /dev/null; then
    DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q gettext-base > /dev/null
fi

"$repo/scripts/build.sh"

dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
mkdir -p "$dest/conf.d" "$dest/logs"

# Debian's nginx.conf, reduced to what matters: the module, then conf.d
cat > "$dest/nginx.conf" <<CONF
load_module $repo/build/ngx_llm_cache_module.so;
pid $dest/logs/nginx.pid;
error_log $dest/logs/error.log;
events {}
http {
    include $dest/conf.d/*.conf;
}
CONF

# the Dockerfile's ENV defaults (KEY=VALUE words, one instruction)
mapfile -t defaults < <(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$dockerfile" \
    | awk '$1 == "ENV" { for (i = 2; i <= NF; i++) print $i }')
[ ${#defaults[@]} -gt 0 ] || fail "no ENV defaults in the Dockerfile"

if ! out=$(env -i PATH="/usr/sbin:/usr/bin:/sbin:/bin" "${defaults[@]}" \
             NGINX_ENVSUBST_TEMPLATE_DIR="$repo/docker/templates" \
             NGINX_ENVSUBST_OUTPUT_DIR="$dest/conf.d" \
             sh "$repo/docker/entrypoint.sh" \
             nginx -t -q -p "$dest/" -c "$dest/nginx.conf" 2>&1); then
    echo "$out" >&2
    fail "nginx -t refuses the image's configuration"
fi
echo "docker/check.sh: the recipe builds with scripts/build.sh;" \
     "its configuration passes nginx -t"
