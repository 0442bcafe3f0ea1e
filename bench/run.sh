#!/usr/bin/env bash
# Benchmark: wrk against, in one run and on one nginx,
#   return   - `return 200` of the cached body (the ceiling)
#   hit      - ngx_llm_cache answering from Redis
#   miss     - ngx_llm_cache with every request to the provider (llm_cache_bypass:
#              a refresh, so each answer is stored too)
#   proxy    - plain proxy_pass to the same fake provider (the miss floor)
#   pcache   - nginx proxy_cache keyed on $request_body (what people do today)
# and prints requests/s, p50/p99 latency and the ratios.
#
#   bench/run.sh [seconds=10] [connections=32] [threads=2]
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10}
conns=${2:-32}
threads=${3:-2}
dir=$(mktemp -d /tmp/llm-bench.XXXXXX)
body="$repo/t/fixtures/openai/chat-request.json"
answer="$repo/t/fixtures/openai/chat-response.json"
nport=18480; rport=16480; pport=18481

"$repo/scripts/build.sh" >/dev/null

cleanup() {
    [ -f "$dir/logs/nginx.pid" ] && kill -QUIT "$(cat "$dir/logs/nginx.pid")" 2>/dev/null
    [ -n "${ppid:-}" ] && kill "$ppid" 2>/dev/null
    redis-cli -p $rport shutdown nosave >/dev/null 2>&1 || true
    sleep 0.3
    rm -rf "$dir"
}
trap cleanup EXIT

chmod 0755 "$dir"   # workers run as nobody
mkdir -p "$dir/logs" "$dir/cache"
redis-server --port $rport --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --logfile "$dir/logs/redis.log" >/dev/null
python3 "$repo/t/lib/fake_provider.py" --port $pport --redis-port $rport \
    > "$dir/logs/provider.log" 2>&1 &
ppid=$!
for _ in $(seq 50); do grep -q READY "$dir/logs/provider.log" && break; sleep 0.1; done

# the fixture answer, as `return` serves it (nginx string: escape $ and ')
ret=$(sed -e "s/'/\\\\'/g" -e 's/\$/${dollar}/g' "$answer" | tr -d '\n')

cat > "$dir/nginx.conf" <<CONF
load_module $repo/build/ngx_llm_cache_module.so;
worker_processes 1;
error_log $dir/logs/error.log warn;
pid $dir/logs/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    proxy_cache_path $dir/cache keys_zone=pc:10m;
    geo \$dollar { default "\$"; }
    upstream llm_provider { server 127.0.0.1:$pport; keepalive 64; }
    llm_cache_redis 127.0.0.1:$rport ${BENCH_REDIS_ARGS:-};
    server {
        listen 127.0.0.1:$nport;
        location = /return {
            default_type application/json;
            return 200 '$ret';
        }
        location = /hit { llm_cache_pass /_llm; }
        location = /miss { llm_cache_pass /_llm; llm_cache_bypass 1; }
        location = /proxy {
            proxy_pass http://llm_provider/v1/chat/completions;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location = /pcache {
            proxy_pass http://llm_provider/v1/chat/completions;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache pc;
            proxy_cache_methods POST;
            proxy_cache_key "\$request_uri|\$request_body";
            proxy_cache_valid 200 1h;
        }
        location /_llm/ {
            internal;
            proxy_pass http://llm_provider/v1/chat/completions;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
CONF

/usr/sbin/nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
sleep 0.5

# warm the two caches
for u in hit pcache; do
    curl -s -o /dev/null -X POST -H 'Authorization: Bearer sk-bench' \
        -H 'Content-Type: application/json' \
        --data-binary @"$body" "http://127.0.0.1:$nport/$u"
    curl -s -o /dev/null -X POST -H 'Authorization: Bearer sk-bench' \
        -H 'Content-Type: application/json' \
        --data-binary @"$body" "http://127.0.0.1:$nport/$u"
done
st=$(curl -s -o /dev/null -w '%header{x-llm-cache}' -X POST \
     -H 'Authorization: Bearer sk-bench' -H 'Content-Type: application/json' \
     --data-binary @"$body" \
     "http://127.0.0.1:$nport/hit")
[ "$st" = HIT ] || { echo "bench: /hit is not a hit ($st)" >&2; exit 1; }

declare -A rps p50 p99
for t in return hit miss proxy pcache; do
    out=$(BODY="$body" wrk -t"$threads" -c"$conns" -d"${secs}s" --latency \
          -s "$repo/bench/post.lua" "http://127.0.0.1:$nport/$t")
    rps[$t]=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p50[$t]=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99[$t]=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errs=$(awk '/Non-2xx|Socket errors/' <<<"$out")
    printf '%-7s %10s req/s  p50 %-9s p99 %-9s %s\n' "$t" "${rps[$t]}" \
        "${p50[$t]}" "${p99[$t]}" "$errs"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "hit   / return : $(ratio "${rps[hit]}" "${rps[return]}")   (target >= 0.60)"
echo "hit   / pcache : $(ratio "${rps[hit]}" "${rps[pcache]}")"
echo "miss  / proxy  : $(ratio "${rps[miss]}" "${rps[proxy]}")   (target >= 0.90)"
grep -E '\[(alert|crit|emerg)\]' "$dir/logs/error.log" && exit 1
echo "error log: no alert, crit or emerg"
