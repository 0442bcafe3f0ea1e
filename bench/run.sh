#!/usr/bin/env bash
# Benchmark: wrk against, in one run and on one nginx,
#   return   - `return 200` of the cached body (the ceiling)
#   hit      - ngx_llm_cache answering from Redis
#   l1       - ngx_llm_cache answering from its shared-memory L1 zone
#   hitgz    - a Redis hit of a compressed entry (llm_cache_compress on), to a
#              client that accepts gzip: sent as stored
#   miss     - ngx_llm_cache with every request to the provider (llm_cache_bypass:
#              a refresh, so each answer is stored too)
#   missns   - the same with llm_cache_no_store: the module's own cost of a
#              miss without the Redis write a miss makes
#   proxy    - plain proxy_pass to the same fake provider (the miss floor)
#   pcache   - nginx proxy_cache keyed on $request_body (what people do today)
# and prints requests/s, p50/p99 latency, the nginx worker's CPU time per
# request (user + sys from /proc/<pid>/stat over the run, divided by the
# requests served: meaningful on a shared machine where req/s swings) and
# the ratios.  With runs > 1 each row is measured that many times, in
# turns, and the medians are printed (the ratios: the median of each run's
# ratio).
#
#   bench/run.sh [seconds=10] [connections=32] [threads=2] [runs=1]
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10}
conns=${2:-32}
threads=${3:-2}
runs=${4:-1}
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
    llm_cache_l1_zone hot:8m;
    server {
        listen 127.0.0.1:$nport;
        location = /return {
            default_type application/json;
            return 200 '$ret';
        }
        location = /hit { llm_cache_pass /_llm; }
        location = /l1 {
            llm_cache_pass /_llm;
            llm_cache_l1 hot;
            add_header X-Tier \$llm_cache_tier;
        }
        location = /hitgz { llm_cache_pass /_llm; llm_cache_compress on; }
        location = /miss { llm_cache_pass /_llm; llm_cache_bypass 1; }
        location = /missns {
            llm_cache_pass /_llm;
            llm_cache_bypass 1;
            llm_cache_no_store 1;
        }
        location = /proxy {
            # as /_llm below, the location a miss goes through
            proxy_pass http://llm_provider/v1/chat/completions;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
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

for i in 1 2; do
    st=$(curl -s -o /dev/null -w '%header{x-llm-cache} %header{content-encoding}' \
         -X POST -H 'Authorization: Bearer sk-bench' -H 'Accept-Encoding: gzip' \
         -H 'Content-Type: application/json' --data-binary @"$body" \
         "http://127.0.0.1:$nport/hitgz")
done
[ "$st" = "HIT gzip" ] || { echo "bench: /hitgz is not a gzip hit ($st)" >&2; exit 1; }

# L1: a Redis hit fills it once our own store's invalidation is back
for i in 1 2 3 4 5; do
    st=$(curl -s -o /dev/null -w '%header{x-tier}' -X POST \
         -H 'Authorization: Bearer sk-bench' \
         -H 'Content-Type: application/json' \
         --data-binary @"$body" "http://127.0.0.1:$nport/l1")
    [ "$st" = l1 ] && break
    sleep 0.2
done
[ "$st" = l1 ] || { echo "bench: /l1 is not an L1 hit ($st)" >&2; exit 1; }

if [ -n "${BENCH_HOLD:-}" ]; then
    # to look at it by hand (strace, perf): until interrupted
    echo "bench: nginx on 127.0.0.1:$nport, pid $(cat "$dir/logs/nginx.pid"), in $dir"
    sleep infinity & wait $!
fi

rows=(${BENCH_ROWS:-return l1 hit hitgz miss missns proxy pcache})
wpid=$(pgrep -P "$(cat "$dir/logs/nginx.pid")" | head -n 1)
tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$wpid/stat"; }

declare -A rps p50 p99 cpu
for r in $(seq "$runs"); do
    [ "$runs" -gt 1 ] && echo "run $r of $runs"
    for t in "${rows[@]}"; do
        c0=$(cpu_ticks)
        gz=; [ "$t" = hitgz ] && gz=1
        out=$(BODY="$body" GZIP=$gz wrk -t"$threads" -c"$conns" -d"${secs}s" --latency \
              -s "$repo/bench/post.lua" "http://127.0.0.1:$nport/$t")
        c1=$(cpu_ticks)
        n=$(awk '/requests in/ { print $1 }' <<<"$out")
        rps[$t,$r]=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
        p50[$t,$r]=$(awk '$1 == "50%" {print $2}' <<<"$out")
        p99[$t,$r]=$(awk '$1 == "99%" {print $2}' <<<"$out")
        cpu[$t,$r]=$(awk -v a="$c0" -v b="$c1" -v n="$n" -v hz="$tck" \
                     'BEGIN { printf "%.1f", (b - a) / hz * 1e6 / n }')
        errs=$(awk '/Non-2xx|Socket errors/' <<<"$out")
        printf '%-7s %10s req/s  p50 %-9s p99 %-9s cpu %6s us/req %s\n' "$t" \
            "${rps[$t,$r]}" "${p50[$t,$r]}" "${p99[$t,$r]}" "${cpu[$t,$r]}" "$errs"
    done
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2];
                                               else printf "%.4g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# the median over the runs of one row's value, or of a ratio of two rows
med() { local -n a=$1; local r; for r in $(seq "$runs"); do echo "${a[$2,$r]}"; done | median; }
ratio() {   # array row_a row_b
    local -n a=$1; local r
    [ -n "${a[$2,1]:-}" ] && [ -n "${a[$3,1]:-}" ] || { echo "-"; return; }
    for r in $(seq "$runs"); do
        awk -v x="${a[$2,$r]}" -v y="${a[$3,$r]}" 'BEGIN { printf "%.4f\n", x / y }'
    done | median | awk '{ printf "%.2f", $1 }'
}

echo
echo "medians of $runs run(s), ${secs}s each, $conns connections, $threads threads:"
for t in "${rows[@]}"; do
    printf '%-7s %10s req/s  cpu %6s us/req\n' "$t" "$(med rps "$t")" "$(med cpu "$t")"
done
echo
echo "l1    / return : req/s $(ratio rps l1 return)   cpu/req $(ratio cpu l1 return)"
echo "hitgz / return : req/s $(ratio rps hitgz return)   cpu/req $(ratio cpu hitgz return)"
echo "hit   / return : req/s $(ratio rps hit return)   cpu/req $(ratio cpu hit return)"
echo "hit   / pcache : req/s $(ratio rps hit pcache)   cpu/req $(ratio cpu hit pcache)"
echo "miss  / proxy  : req/s $(ratio rps miss proxy)   cpu/req $(ratio cpu miss proxy)"
echo "missns/ proxy  : req/s $(ratio rps missns proxy)   cpu/req $(ratio cpu missns proxy)"
grep -E '\[(alert|crit|emerg)\]' "$dir/logs/error.log" && exit 1
echo "error log: no alert, crit or emerg"
