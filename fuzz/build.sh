#!/usr/bin/env bash
# Builds build/fuzz/fuzz_canonical, the libFuzzer harness for the request
# body canonicalizer and the key builder, and build/fuzz/fuzz_sse, the one
# for the event-stream parser, with ASan and UBSan.
#
#   CC=<clang>            default clang-14, else clang (Debian 12 packages:
#                         clang-14 libclang-rt-14-dev)
#   NGINX_CORE_SRC=<dir>  a full source tree of the same nginx version as
#                         build/nginx: its pool, array, string and file code
#                         is linked instead of fuzz/ngx_core_shim.c; default
#                         build/nginx itself when it is a full tree (Debian's
#                         nginx-dev has headers only)
#   BUILD_DIR=<dir>       default build/
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD_DIR:-$repo/build}
tree="$build/nginx"
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

# nginx's headers and ngx_auto_config.h, configured with Debian's flags
if [ ! -f "$tree/objs/ngx_auto_config.h" ]; then
    BUILD_DIR="$build" "$repo/scripts/build.sh"
fi

core=${NGINX_CORE_SRC:-}
if [ -z "$core" ] && [ -f "$tree/src/core/ngx_palloc.c" ]; then
    core=$tree
fi

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

objs=()

compile() {
    local src=$1 obj
    shift
    obj="$out/obj/$(basename "$src" .c).o"
    "$CC" -c "${cflags[@]}" "$@" "$src" -o "$obj"
    objs+=("$obj")
}

# the code under test and the harness: sanitized and coverage-guided
for src in "$module/ngx_llm_cache_json.c" "$module/ngx_llm_cache_key.c" \
           "$module/ngx_llm_cache_header.c" "$here/fuzz_canonical.c"; do
    compile "$src" -fsanitize=fuzzer-no-link "${strict[@]}"
done

canonical_objs=("${objs[@]}")
objs=()

# the event-stream parser's harness
for src in "$module/ngx_llm_cache_sse.c" "$here/fuzz_sse.c"; do
    compile "$src" -fsanitize=fuzzer-no-link "${strict[@]}"
done

sse_objs=("${objs[@]}")
objs=()

# nginx's own code, or the stand-in: sanitized only
if [ -n "$core" ]; then
    # every pool allocation its own malloc(), so that ASan sees overruns
    for src in core/ngx_palloc.c core/ngx_array.c core/ngx_string.c \
               os/unix/ngx_alloc.c os/unix/ngx_files.c; do
        compile "$core/src/$src" -DNGX_DEBUG_PALLOC=1
    done
    using="nginx core from $core"
else
    compile "$here/ngx_core_shim.c" "${strict[@]}"
    using="fuzz/ngx_core_shim.c for nginx core"
fi

compile "$here/ngx_stubs.c" "${strict[@]}"

if ! "$CC" -fsanitize=fuzzer,address,undefined "${canonical_objs[@]}" \
        "${objs[@]}" -lyajl -lcrypto -o "$out/fuzz_canonical.tmp" \
        2> "$out/link.log" \
    || ! "$CC" -fsanitize=fuzzer,address,undefined "${sse_objs[@]}" \
        "${objs[@]}" -lyajl -o "$out/fuzz_sse.tmp" 2>> "$out/link.log"
then
    cat "$out/link.log" >&2
    if grep -q 'libclang_rt.fuzzer' "$out/link.log"; then
        echo "fuzz/build.sh: no libFuzzer runtime for $CC" \
             "(Debian 12: apt-get install libclang-rt-14-dev)" >&2
    fi
    exit 1
fi

mv -f "$out/fuzz_canonical.tmp" "$out/fuzz_canonical"
mv -f "$out/fuzz_sse.tmp" "$out/fuzz_sse"
echo "fuzz/build.sh: built $out/fuzz_canonical and $out/fuzz_sse ($using)"
