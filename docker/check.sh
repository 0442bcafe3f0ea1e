#!/usr/bin/env bash
# No Docker engine here: exercise the image recipe without one.  The
# Dockerfile's module step is docker/install-module.sh; run it into a
# scratch DESTDIR and check that Debian's nginx loads what it installed,
# with the image's own server config.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)

grep -q 'docker/install-module.sh' "$repo/docker/Dockerfile" || {
    echo "docker/check.sh: the Dockerfile no longer runs install-module.sh" >&2
    exit 1
}

dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT

DESTDIR="$dest" SKIP_DEPS="${SKIP_DEPS:-1}" "$repo/docker/install-module.sh"

# the image's nginx.conf, reduced to what matters: modules-enabled, then
# conf.d/llm-cache.conf (its upstream and redis names mapped to loopback)
mkdir -p "$dest/logs"
sed -e 's/provider:8081/127.0.0.1:8081/' -e 's/redis:6379/127.0.0.1:6379/' \
    "$repo/docker/llm-cache.conf" > "$dest/llm-cache.conf"
cat > "$dest/nginx.conf" <<CONF
include $dest/etc/nginx/modules-enabled/*.conf;
pid $dest/logs/nginx.pid;
events {}
http {
    include $dest/llm-cache.conf;
}
CONF
# load_module in modules-enabled is relative to the prefix
mkdir -p "$dest/modules"
cp "$dest/usr/lib/nginx/modules/ngx_llm_cache_module.so" "$dest/modules/"

/usr/sbin/nginx -t -q -p "$dest/" -e "$dest/logs/error.log" -c "$dest/nginx.conf"
echo "docker/check.sh: the image recipe builds a module nginx loads"
