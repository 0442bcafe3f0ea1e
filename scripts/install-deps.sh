#!/usr/bin/env bash
# Installs what building, running and testing the module need, from
# Debian 12's packages.  Run as root (or through sudo).
set -euo pipefail

packages=(
    # build: nginx's source tree and configure flags, the libraries
    build-essential nginx nginx-dev libhiredis-dev libyajl-dev libssl-dev
    # run: Redis, the fake provider, a client
    redis-server python3 curl
    # test: Test::Nginx's dependencies (the fallback runner uses them too)
    libtest-base-perl libtest-longstring-perl libtext-diff-perl
    liblist-moreutils-perl libwww-perl libipc-run-perl
    # benchmark, memory checks, the fuzzer (libFuzzer, ASan, UBSan)
    wrk valgrind clang-14 libclang-rt-14-dev
    # fetching openresty's Test::Nginx in CI, when GitHub can be reached
    git ca-certificates
)

if [ "${1:-}" = "--list" ]; then
    printf '%s\n' "${packages[@]}"
    exit 0
fi

sudo=
if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
fi

export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${packages[@]}"

# Debian starts services from packages; the project runs its own
# instances on their own ports, so the packaged ones may stay or go.
