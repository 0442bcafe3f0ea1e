#!/usr/bin/env bash
# Installs the packages, builds ngx_llm_cache_module.so with scripts/build.sh
# and installs it for Debian's nginx:
#
#   $DESTDIR/usr/lib/nginx/modules/ngx_llm_cache_module.so
#   $DESTDIR/etc/nginx/modules-enabled/50-mod-http-llm-cache.conf
#
# Run by the Dockerfile (DESTDIR empty) and by CI (DESTDIR a temp dir).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dest=${DESTDIR:-}

if [ "${SKIP_DEPS:-}" != 1 ]; then
    "$repo/scripts/install-deps.sh"
fi

"$repo/scripts/build.sh"

install -D -m 0644 "$repo/build/ngx_llm_cache_module.so" \
    "$dest/usr/lib/nginx/modules/ngx_llm_cache_module.so"
install -d "$dest/etc/nginx/modules-enabled"
echo "load_module modules/ngx_llm_cache_module.so;" \
    > "$dest/etc/nginx/modules-enabled/50-mod-http-llm-cache.conf"

echo "install-module.sh: installed into ${dest:-/}"
