#!/usr/bin/env bash
# Builds the module and runs the Test::Nginx suites in t/ against a real
# nginx, a real redis-server and the fake provider.  Extra arguments go to
# prove (e.g. scripts/test.sh t/001-cache.t).
#
# The runner is openresty's Test::Nginx::Socket when it is installed
# (or found through PERL5LIB), else the project's fallback runner; the
# first lines of the output say which.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

"$repo/scripts/build.sh"

export LLM_CACHE_MODULE="$repo/build/ngx_llm_cache_module.so"
export PATH="/usr/sbin:$PATH"

if [ $# -eq 0 ]; then
    set -- -r t
fi

exec prove "$@"
