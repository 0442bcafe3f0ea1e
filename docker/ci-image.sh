#!/usr/bin/env bash
# Builds docker/Dockerfile for real and runs the gateway from the image,
# without a Docker engine (CI's machines have none):
#
#   1. base image: debootstrap --variant=minbase bookworm from the machine's
#      Debian mirror, imported with podman as docker.io/library/debian:bookworm
#      (the name the Dockerfile uses), in a private container store
#   2. buildah bud --isolation chroot -f docker/Dockerfile
#   3. the runtime image adds at most IMAGE_MAX_ADDED_MB (40) MB to the base
#   4. nginx -t on the image's configuration with nothing reachable
#   5. the gateway from the image (buildah run, host network) starts with
#      Redis and the provider down (ERROR), then, with a redis-server and
#      t/lib/fake_provider.py on loopback, answers MISS, then HIT
#
# Everything (store, mounts, processes) is removed on exit.  Outside CI
# the base file system is cached in $IMAGE_CACHE_DIR (default
# ~/.cache/ngx-llm-cache) for a week; CI=true always makes a fresh one.
# Run as root on Debian 12; installs what it needs with apt-get.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
max_added_mb=${IMAGE_MAX_ADDED_MB:-40}
cache=${IMAGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ngx-llm-cache}
base=docker.io/library/debian:bookworm
image=localhost/ngx-llm-cache:ci
started=$SECONDS

say() { echo "ci-image: $*"; }
fail() { echo "ci-image: FAIL: $*" >&2; exit 1; }
fail_log() { cat "$work/gateway.log" >&2; fail "$@"; }

# --- what it needs --------------------------------------------------------

need=()
for pkg in debootstrap buildah podman redis-server python3 curl; do
    dpkg -s "$pkg" > /dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q > /dev/null
    apt-get install -y -q --no-install-recommends "${need[@]}" > /dev/null
fi

# --- private store, cleaned up on exit ------------------------------------

# the tools' own state directories, removed at the end if made here
made_here=()
for d in /var/lib/containers /run/crun /run/containers /run/libpod; do
    [ -e "$d" ] || made_here+=("$d")
done

work=$(mktemp -d "${IMAGE_WORK_DIR:-/var/tmp}/ngx-llm-cache-image.XXXXXX")
store=(--root "$work/storage" --runroot "$work/runroot"
       --storage-driver "${IMAGE_STORAGE_DRIVER:-overlay}")
podman() { command podman "${store[@]}" --tmpdir "$work/libpod" "$@"; }
ctr=
gateway_pid=
gateway_quit=
pids=()

# the processes under $1: "pid name parent-name", one a line
descendants() {
    ps -e -o pid= -o ppid= -o comm= | awk -v root="$1" '
        { parent[$1] = $2; name[$1] = $3 }
        END {
            for (p in parent)
                for (q = parent[p]; q > 0; q = parent[q])
                    if (q == root) {
                        print p, name[p], name[parent[p]]
                        break
                    }
        }'
}

stop_gateway() {
    local master i
    [ -n "$gateway_pid" ] || return 0
    # buildah run -> chroot runtime -> entrypoint -> nginx master: a
    # graceful quit to the master (killing buildah would orphan workers)
    master=$(descendants "$gateway_pid" \
             | awk '$2 == "nginx" && $3 != "nginx" { print $1; exit }')
    [ -z "$master" ] || kill -QUIT "$master" 2>/dev/null || true
    gateway_quit=no
    for i in $(seq 100); do
        kill -0 "$gateway_pid" 2>/dev/null || { gateway_quit=yes; break; }
        sleep 0.1
    done
    for i in $(descendants "$gateway_pid" | awk '{ print $1 }'); do
        kill -KILL "$i" 2>/dev/null || true
    done
    kill -KILL "$gateway_pid" 2>/dev/null || true
    wait "$gateway_pid" 2>/dev/null || true
    gateway_pid=
}

cleanup() {
    local p m
    set +e
    trap '' INT TERM
    stop_gateway
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    [ -z "$ctr" ] || buildah "${store[@]}" rm "$ctr" > /dev/null 2>&1
    buildah "${store[@]}" rm --all > /dev/null 2>&1
    podman rmi --all --force > /dev/null 2>&1
    # the store's own mounts (overlay keeps its home bind-mounted)
    for m in $(findmnt -rn -o TARGET | grep "^$work/" | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
    rm -rf --one-file-system "$work"
    for m in "${made_here[@]}"; do
        findmnt -rn -o TARGET | grep -q "^$m" || rm -rf "$m"
    done
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- 1. the base image ----------------------------------------------------

# the machine's Debian mirrors, from its apt sources (one-line and deb822)
apt_uris() {
    {
        cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | awk '$1 == "deb" {
                       for (i = 2; i <= NF; i++)
                           if ($i ~ /^[a-z+]+:\/\//) { print $i; break }
                   }'
        cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
            | awk '$1 == "URIs:" { for (i = 2; i <= NF; i++) print $i }'
    } | sed 's,/*$,,'
}
uris=$(apt_uris)
mirror=${DEBIAN_MIRROR:-$(grep -m 1 -E '/debian$' <<< "$uris" || true)}
security=${DEBIAN_SECURITY_MIRROR:-$(grep -m 1 -E '/debian-security$' \
                                     <<< "$uris" || true)}
[ -n "$mirror" ] \
    || fail "no Debian mirror in /etc/apt/sources.list*; set DEBIAN_MIRROR"

# an apt proxy, if the machine's apt uses one, for debootstrap and the build
if [ -z "${http_proxy:-}" ]; then
    eval "$(apt-config shell http_proxy Acquire::http::Proxy)"
    [ -z "${http_proxy:-}" ] || export http_proxy
fi

tarball=$cache/debian-bookworm-minbase.tar
t0=$SECONDS
if [ "${CI:-}" != true ] \
   && [ -n "$(find "$tarball" -mtime -7 2>/dev/null)" ]; then
    say "base: cached $tarball"
else
    say "base: debootstrap --variant=minbase bookworm $mirror"
    rootfs=$work/rootfs
    # one more try: a mirror's hiccup should not fail CI
    for try in 1 2; do
        rm -rf "${rootfs:?}"
        debootstrap --variant=minbase bookworm "$rootfs" "$mirror" \
            > "$work/debootstrap.log" 2>&1 && break
        tail -n 20 "$work/debootstrap.log" >&2
        [ "$try" = 1 ] || fail "debootstrap"
        say "base: debootstrap failed, once more"
    done
    # apt sources as in Debian's own images: release, updates, security
    rm -f "$rootfs/etc/apt/sources.list"
    entry() {
        printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\n' "$1" "$2"
        printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    }
    {
        entry "$mirror" "bookworm bookworm-updates"
        [ -z "$security" ] || { echo; entry "$security" bookworm-security; }
    } > "$rootfs/etc/apt/sources.list.d/debian.sources"
    rm -rf "${rootfs:?}"/var/cache/apt/archives/*.deb \
           "${rootfs:?}"/var/lib/apt/lists/* "${rootfs:?}"/dev/* \
           "${rootfs:?}"/var/log/*.log
    tar --numeric-owner -C "$rootfs" -cf "$work/base.tar" .
    rm -rf "${rootfs:?}"
    if [ "${CI:-}" != true ]; then
        mkdir -p "$cache"
        mv "$work/base.tar" "$tarball.tmp" && mv "$tarball.tmp" "$tarball"
    else
        tarball=$work/base.tar
    fi
fi
podman import --quiet "$tarball" "$base" > /dev/null
say "base: $base ready in $((SECONDS - t0)) s"

# --- 2. the image -----------------------------------------------------------

t0=$SECONDS
say "build: buildah bud --isolation chroot -f docker/Dockerfile"
buildah "${store[@]}" bud --isolation chroot --pull=never --network host \
    -f "$repo/docker/Dockerfile" -t "$image" "$repo" \
    < /dev/null > "$work/build.log" 2>&1 || {
    tail -n 40 "$work/build.log" >&2
    fail "buildah bud"
}
say "build: $image in $((SECONDS - t0)) s"

# --- 3. its size ------------------------------------------------------------

base_size=$(podman image inspect --format '{{.Size}}' "$base")
image_size=$(podman image inspect --format '{{.Size}}' "$image")
added=$((image_size - base_size))
say "size: base $((base_size / 1000000)) MB," \
    "image $((image_size / 1000000)) MB," \
    "added $((added / 1000000)) MB (at most $max_added_mb MB)"
[ "$added" -le $((max_added_mb * 1000000)) ] \
    || fail "the runtime image adds $added bytes to its base"
ctr=$(buildah "${store[@]}" from --pull=never "$image")
# shellcheck disable=SC2016
if buildah "${store[@]}" run --isolation chroot "$ctr" -- sh -c \
       'for c in cc gcc clang make valgrind; do
            command -v $c && exit 0
        done
        exit 1' 2> /dev/null; then
    fail "the runtime image has build tools"
fi

# --- 4. nginx -t, nothing reachable -----------------------------------------

free_port() {
    python3 -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
gw_port=$(free_port)
redis_port=$(free_port)
provider_port=$(free_port)

run_in() {
    buildah "${store[@]}" run --isolation chroot --network host \
        -e LLM_CACHE_LISTEN="127.0.0.1:$gw_port" \
        -e LLM_CACHE_REDIS="127.0.0.1:$redis_port" \
        -e LLM_PROVIDER_URL="http://127.0.0.1:$provider_port" \
        -e LLM_PROVIDER_KEY=sk-ci-image \
        "$ctr" -- "$@"
}

say "nginx -t: the image's defaults"
buildah "${store[@]}" run --isolation chroot --network host "$ctr" -- \
    /docker-entrypoint.sh nginx -t < /dev/null
say "nginx -t: Redis 127.0.0.1:$redis_port and provider :$provider_port down"
run_in /docker-entrypoint.sh nginx -t < /dev/null

# --- 5. the gateway ---------------------------------------------------------

ask() {   # ask <out-file>: prints the X-LLM-Cache header; no credential
    curl -s -m 10 -o "$1" -w '%{http_code} %header{x-llm-cache}' \
        "http://127.0.0.1:$gw_port/v1/chat/completions" \
        -H 'Content-Type: application/json' \
        --data-binary @"$repo/t/fixtures/openai/chat-request.json" || true
}

say "gateway: starting with Redis and the provider down"
run_in /docker-entrypoint.sh nginx -g 'daemon off;' \
    < /dev/null > "$work/gateway.log" 2>&1 &
gateway_pid=$!
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$gw_port/" && break
    kill -0 "$gateway_pid" 2>/dev/null || fail_log "the gateway exited"
    sleep 0.1
done
got=$(ask /dev/null)
[ "$got" = "502 ERROR" ] \
    || fail_log "nothing up: expected '502 ERROR', got '$got'"
say "gateway: nothing up -> $got (fails open)"

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" --logfile "$work/redis.log" --daemonize no \
    < /dev/null > /dev/null 2>&1 &
pids+=($!)
python3 "$repo/t/lib/fake_provider.py" --port "$provider_port" \
    --redis-port "$redis_port" < /dev/null > "$work/provider.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    grep -q READY "$work/provider.log" 2>/dev/null \
        && redis-cli -p "$redis_port" ping > /dev/null 2>&1 && break
    sleep 0.1
done

# the module reconnects with backoff (up to 5 s); until then, ERROR
got=
for _ in $(seq 60); do
    got=$(ask "$work/miss.json")
    [ "$got" != "200 ERROR" ] && break
    sleep 0.5
done
[ "$got" = "200 MISS" ] || fail_log "expected '200 MISS', got '$got'"
calls=$(curl -s "http://127.0.0.1:$provider_port/__stats")
got=$(ask "$work/hit.json")
[ "$got" = "200 HIT" ] || fail_log "expected '200 HIT', got '$got'"
cmp -s "$work/miss.json" "$work/hit.json" \
    || fail "the HIT body differs from the MISS body"
[ "$(curl -s "http://127.0.0.1:$provider_port/__stats")" = "$calls" ] \
    || fail "the HIT called the provider"
say "gateway: MISS, then HIT (same body, no provider call)"

stop_gateway
[ "$gateway_quit" = yes ] || fail "nginx did not quit on SIGQUIT within 10 s"
if grep -E '\[(alert|crit|emerg)\]' "$work/gateway.log"; then
    fail "the gateway's log has alerts"
fi
say "ok in $((SECONDS - started)) s"
