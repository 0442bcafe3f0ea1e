#!/usr/bin/env bash
# Builds the libFuzzer harnesses, with ASan and UBSan, into build/fuzz/:
#
#   fuzz_canonical  the request body canonicalizer and the key builder
#   fuzz_entry      the stored entry decoder and encoder (bytes from Redis)
#   fuzz_sse        the event-stream parser that judges a stream complete
#   fuzz_semantic   the semantic core: embedding replies, vector entries
#                   (bytes from Redis), guards, candidates
#
# linked with nginx's own core objects (ngx_palloc.o, ngx_string.o, ...)
# from an nginx build tree made by scripts/build.sh, with stubs
# (fuzz/ngx_stubs.c) only for what would pull in the rest of nginx.
#
#   CC=<clang>            default clang-14, else clang (Debian 12 packages:
#                         clang-14 libclang-rt-14-dev)
#   NGINX_CORE_SRC=<dir>  a full nginx source tree of the installed version
#                         (Debian's nginx-dev has headers only); default:
#                         build/nginx when scripts/build.sh was given one
#                         (NGINX_SRC=<dir>), else the upstream source of
#                         Debian's nginx source package, fetched once with
#                         apt-get into build/fuzz/src (never committed)
#   BUILD_DIR=<dir>       default build/
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD_DIR:-$repo/build}
out="$build/fuzz"
module="$repo/ngx_llm_cache_module"

if [ -z "${CC:-}" ]; then
    CC=clang-14
    command -v "$CC" > /dev/null || CC=clang
fi

if ! command -v "$CC" > /dev/null; then
    echo "fuzz/build.sh: no $CC" \
         "(Debian 12: apt-get install clang-14 libclang-rt-14-dev)" >&2
    exit 1
fi

mkdir -p "$out"

# The upstream nginx source of Debian's nginx-dev, from the deb-src of the
# apt sources this machine already uses (a private list: the machine's own
# apt configuration is left as it is).
fetch_source() {
    local version upstream apt dst list suites uri
    version=$(dpkg-query -W -f='${Version}' nginx-dev)
    upstream=${version%%-*}
    dst="$out/src/nginx-$upstream"

    if [ -f "$dst/src/core/ngx_palloc.c" ]; then
        echo "$dst"
        return
    fi

    apt="$out/src/apt"
    rm -rf "$apt" "$dst"
    mkdir -p "$apt/lists/partial" "$apt/get"
    list="$apt/sources.list"
    : > "$list"

    # one-line and deb822 source lists alike: their URIs and suites
    # shellcheck disable=SC2013
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) \([^ ]*\) .*/deb-src \2 \3 main/p' \
            "$f" >> "$list"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk '/^URIs:/ { u = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) s = s " " $i }
             /^$/ || /^Components:/ { if (u && s) { n = split(s, a, " ");
                 for (i = 1; i <= n; i++) print "deb-src " u " " a[i] " main" };
                 if (/^$/) { u = ""; s = "" } }
             END { if (u && s) { n = split(s, a, " ");
                 for (i = 1; i <= n; i++) print "deb-src " u " " a[i] " main" } }' \
            "$f" | sort -u >> "$list"
    done

    local opts=(-q -o "Dir::Etc::SourceList=$list"
                -o Dir::Etc::SourceParts=/dev/null
                -o "Dir::State::Lists=$apt/lists")

    apt-get "${opts[@]}" update > "$apt/update.log" 2>&1 || {
        cat "$apt/update.log" >&2
        echo "fuzz/build.sh: apt-get update (deb-src) failed;" \
             "set NGINX_CORE_SRC to a full nginx $upstream source tree" >&2
        exit 1
    }

    # the .dsc or the Debian part may be missing on a mirror: only the
    # upstream tarball is needed
    (cd "$apt/get" && apt-get "${opts[@]}" source --download-only \
         "nginx=$version" > "$apt/source.log" 2>&1 \
     || apt-get "${opts[@]}" source --download-only nginx \
         >> "$apt/source.log" 2>&1) || true

    if [ ! -f "$apt/get/nginx_$upstream.orig.tar.gz" ]; then
        cat "$apt/source.log" >&2
        echo "fuzz/build.sh: no nginx_$upstream.orig.tar.gz from apt-get" \
             "source; set NGINX_CORE_SRC to a full nginx $upstream tree" >&2
        exit 1
    fi

    mkdir -p "$out/src"
    tar -xzf "$apt/get/nginx_$upstream.orig.tar.gz" -C "$out/src"
    echo "$dst"
}

# a build tree configured by scripts/build.sh from a full source
tree="$build/nginx"

if [ ! -f "$tree/src/core/ngx_palloc.c" ]; then
    src=${NGINX_CORE_SRC:-}

    if [ -z "$src" ]; then
        src=$(fetch_source)
    fi

    # Debian's configure flags, so that the objects match the headers the
    # module is built with
    mkdir -p "$out/src"
    if [ "$src" != "$out/src/nginx" ]; then
        rm -rf "$out/src/nginx"
        cp -a "$src" "$out/src/nginx"
    fi
    if [ -f /usr/share/nginx/src/conf_flags ]; then
        cp /usr/share/nginx/src/conf_flags "$out/src/nginx/conf_flags"
    fi

    NGINX_SRC="$out/src/nginx" BUILD_DIR="$out/ngx" \
        "$repo/scripts/build.sh" > "$out/ngx-build.log" 2>&1 || {
        cat "$out/ngx-build.log" >&2
        exit 1
    }

    tree="$out/ngx/nginx"

elif [ ! -f "$tree/objs/Makefile" ]; then
    BUILD_DIR="$build" "$repo/scripts/build.sh"
fi

# nginx's own objects, compiled by its Makefile as for nginx itself
core=(core/ngx_palloc core/ngx_array core/ngx_list core/ngx_hash
      core/ngx_string core/ngx_log core/ngx_times core/ngx_parse
      os/unix/ngx_alloc os/unix/ngx_errno os/unix/ngx_files
      os/unix/ngx_thread_id os/unix/ngx_time http/ngx_http_parse)

targets=()
for o in "${core[@]}"; do
    targets+=("objs/src/$o.o")
done

make -C "$tree" -f objs/Makefile "${targets[@]}" > "$out/core.log" 2>&1 || {
    tail -n 30 "$out/core.log" >&2
    exit 1
}

incs=()
for dir in src/core src/event src/event/modules src/os/unix objs \
           src/http src/http/modules src/http/v2; do
    incs+=(-I "$tree/$dir")
done
incs+=(-I "$module")

san=("-fsanitize=address,undefined" -fno-sanitize-recover=all)
cflags=(-g -O1 -fno-omit-frame-pointer "${san[@]}" "${incs[@]}")
strict=(-W -Wall -Wpointer-arith -Wno-unused-parameter -Werror)

rm -rf "$out/obj"
mkdir -p "$out/obj"

compile() {
    local src=$1 obj
    shift
    obj="$out/obj/$(basename "$src" .c).o"
    "$CC" -c "${cflags[@]}" "$@" "$src" -o "$obj"
    echo "$obj"
}

# the code under test and the harnesses: sanitized and coverage-guided
lib=()
for src in "$module/ngx_llm_cache_json.c" "$module/ngx_llm_cache_key.c" \
           "$module/ngx_llm_cache_key_memo.c" \
           "$module/ngx_llm_cache_header.c" "$module/ngx_llm_cache_entry.c" \
           "$module/ngx_llm_cache_sse.c" \
           "$module/ngx_llm_cache_semantic_index.c" "$here/ngx_stubs.c"; do
    lib+=("$(compile "$src" -fsanitize=fuzzer-no-link "${strict[@]}")")
done

for o in "${core[@]}"; do
    lib+=("$tree/objs/src/$o.o")
done

for name in fuzz_canonical fuzz_entry fuzz_sse fuzz_semantic; do
    obj=$(compile "$here/$name.c" -fsanitize=fuzzer-no-link "${strict[@]}")

    # nginx's objects are not position-independent
    if ! "$CC" -fsanitize=fuzzer,address,undefined -no-pie "$obj" "${lib[@]}" \
            -lyajl -lcrypto -lcrypt -lm -lz -o "$out/$name.tmp" 2> "$out/link.log"
    then
        cat "$out/link.log" >&2
        if grep -q 'libclang_rt.fuzzer' "$out/link.log"; then
            echo "fuzz/build.sh: no libFuzzer runtime for $CC" \
                 "(Debian 12: apt-get install libclang-rt-14-dev)" >&2
        fi
        exit 1
    fi

    mv -f "$out/$name.tmp" "$out/$name"
done

echo "fuzz/build.sh: built $out/fuzz_canonical, fuzz_entry, fuzz_sse and" \
     "fuzz_semantic" \
     "(nginx objects from $tree)"
