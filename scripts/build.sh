#!/usr/bin/env bash
# Builds build/ngx_llm_cache_module.so.
#
#   NGINX_SRC=<dir>  nginx source tree to build against; default
#                    /usr/share/nginx/src (Debian's nginx-dev), whose
#                    conf_flags are used so that Debian's nginx loads it;
#                    a release tarball or a git checkout (auto/configure)
#                    has none: give the flags of the nginx that is to load
#                    the module in NGINX_CONFIGURE_FLAGS (--with-compat ...)
#   NGINX_CONFIGURE_FLAGS="..."  extra ./configure flags (--with-cc-opt=...)
#   BUILD_DIR=<dir>  default build/
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
src=${NGINX_SRC:-/usr/share/nginx/src}
build=${BUILD_DIR:-$repo/build}
tree="$build/nginx"

# a release tarball has ./configure, a git checkout only auto/configure
configure=./configure
if [ ! -x "$src/configure" ]; then
    configure=auto/configure
fi
if [ ! -x "$src/$configure" ]; then
    echo "build.sh: no nginx source at $src (install nginx-dev or set NGINX_SRC)" >&2
    exit 1
fi

flags=()
if [ -f "$src/conf_flags" ]; then
    # shellcheck disable=SC1091
    . "$src/conf_flags"
    flags=("${NGX_CONF_FLAGS[@]}")
fi
# shellcheck disable=SC2206
flags+=(${NGINX_CONFIGURE_FLAGS:-} "--add-dynamic-module=$repo")

# the addon script too: a source file added to it needs a new configure
stamp="$src ${flags[*]} config:$(cksum < "$repo/config")"

mkdir -p "$build"

# configure writes into the tree: work on a copy, configured once per
# source, flags and addon script, then rebuilt incrementally by make
if [ ! -f "$tree/objs/Makefile" ] || [ "$(cat "$tree/.llm_cache_stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$tree"
    cp -a "$src" "$tree"
    echo "build.sh: configuring nginx in $tree"
    (cd "$tree" && $configure "${flags[@]}" > "$build/configure.log" 2>&1) || {
        tail -n 30 "$build/configure.log" >&2
        exit 1
    }
    echo "$stamp" > "$tree/.llm_cache_stamp"
fi

make -C "$tree" -f objs/Makefile -j"$(nproc)" modules > "$build/make.log" 2>&1 || {
    grep -E 'error|warning' "$build/make.log" >&2 || tail -n 30 "$build/make.log" >&2
    exit 1
}

# a new file, not an overwrite: a running nginx has the old one mapped
cp "$tree/objs/ngx_llm_cache_module.so" "$build/.ngx_llm_cache_module.so.tmp"
mv -f "$build/.ngx_llm_cache_module.so.tmp" "$build/ngx_llm_cache_module.so"
echo "build.sh: built $build/ngx_llm_cache_module.so"
