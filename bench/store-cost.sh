#!/usr/bin/env bash
# The cost of storing one large answer, and the size of entries in Redis:
#
#   bench/store-cost.sh sizes [module.so]
#       STRLEN and MEMORY USAGE of the entry of each fixture (OpenAI chat
#       JSON, OpenAI chat, Anthropic and Responses streams), with
#       llm_cache_compress off and on
#   bench/store-cost.sh massif|callgrind <out> off|on|nolen [json|sse] [module.so]
#       one single-process nginx under valgrind stores one 1 MB answer
#       (json: X-Fake-Size, with Content-Length; sse: ~3300 events, chunked;
#       nolen: the JSON without Content-Length); then ms_print <out> or
#       callgrind_annotate --inclusive=yes <out> (ngx_llm_cache_body_filter
#       is the capture and the store)
#
# Needs redis-server, redis-cli, curl, valgrind, python3 and nginx in /usr/sbin.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
mode=$1
d=$(mktemp -d /tmp/llm-store-cost.XXXXXX)
b=$((47000 + ($$ % 600) * 3)); rp=$b; pp=$((b + 1)); np=$((b + 2))
big=""

cleanup() {
    [ -n "${ng:-}" ] && kill -QUIT "$ng" 2>/dev/null && wait "$ng" 2>/dev/null || true
    [ -n "${fp:-}" ] && kill "$fp" 2>/dev/null || true
    [ -f "$d/redis.pid" ] && kill "$(cat "$d/redis.pid")" 2>/dev/null || true
    [ -n "$big" ] && rm -f "$big"
    rm -rf "$d"
}
trap cleanup EXIT

if [ "$mode" = sizes ]; then
    so=${2:-$repo/build/ngx_llm_cache_module.so}
else
    out=$2; loc=$3; kind=${4:-json}
    so=${5:-$repo/build/ngx_llm_cache_module.so}
fi

redis-server --port $rp --save '' --appendonly no --daemonize yes \
    --pidfile "$d/redis.pid" --logfile "$d/redis.log"
for i in $(seq 1 50); do redis-cli -p $rp ping >/dev/null 2>&1 && break; sleep 0.1; done
python3 "$repo/t/lib/fake_provider.py" --port $pp --redis-port $rp > "$d/fp.log" 2>&1 &
fp=$!
for i in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$pp/__stats" && break; sleep 0.1; done

mkdir -p "$d/logs"
cat > "$d/nginx.conf" <<EOC
load_module $so;
daemon off; master_process off; worker_processes 1;
error_log $d/logs/error.log warn;
pid $d/nginx.pid;
events {}
http {
    access_log off;
    llm_cache_redis 127.0.0.1:$rp;
    upstream p { server 127.0.0.1:$pp; }
    server {
        listen $np;
        location / { return 404; }
        location /off/ { llm_cache_pass /_llm; llm_cache_namespace m;
                         llm_cache_max_size 4m; llm_cache_redis_timeout 10s; }
        location /on/ { llm_cache_pass /_llm; llm_cache_namespace m;
                        llm_cache_max_size 4m; llm_cache_redis_timeout 10s;
                        llm_cache_compress on; }
        location /nolen/ { llm_cache_pass /_nolen; llm_cache_namespace m;
                           llm_cache_max_size 4m; llm_cache_redis_timeout 10s; }
        location ^~ /_llm/ { internal; rewrite ^/_llm/[a-z]+/(.*)\$ /\$1 break;
            proxy_pass http://p; proxy_http_version 1.1; proxy_buffering off; }
        location ^~ /_nolen/ { internal; rewrite ^/_nolen/[a-z]+/(.*)\$ /\$1 break;
            proxy_pass http://p; proxy_http_version 1.1; proxy_buffering off;
            proxy_hide_header Content-Length; }
    }
}
EOC

post() {    # post <location> <path> <request fixture> [header]
    curl -s -o /dev/null -w '%{http_code} %{size_download}\n' \
         -H 'Authorization: Bearer x' -H 'Content-Type: application/json' \
         ${4:+-H "$4"} --data-binary "@$repo/t/fixtures/$3" \
         "http://127.0.0.1:$np/$1$2"
}

warm() {    # a first request sets up the Redis connection
    for i in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$np/" && break; sleep 0.2; done
    curl -s -o /dev/null -H 'Authorization: Bearer x' -H 'Content-Type: application/json' \
         --data-binary '{"model":"warm","messages":[]}' "http://127.0.0.1:$np/off/v1/chat/completions"
    sleep 1
}

if [ "$mode" = sizes ]; then
    /usr/sbin/nginx -p "$d" -c "$d/nginx.conf" &
    ng=$!
    warm
    for spec in "chat-json:/v1/chat/completions:openai/chat-request.json" \
                "chat-sse:/v1/chat/completions:openai/chat-request-stream.json" \
                "anthropic-sse:/v1/messages:anthropic/messages-request-stream.json" \
                "responses-sse:/v1/responses:openai/responses-request-stream.json"
    do
        IFS=: read -r name path req <<< "$spec"
        for m in off on; do
            redis-cli -p $rp flushall > /dev/null
            post $m "$path" "$req" > /dev/null || true
            sleep 0.3
            k=$(redis-cli -p $rp --scan --pattern "llm:*" | grep -v ":lock" | head -1 || true)
            echo "$name $m strlen=$(redis-cli -p $rp strlen "$k") memory_usage=$(redis-cli -p $rp memory usage "$k")"
        done
    done
    exit 0
fi

header="X-Fake-Size: 1000000"
if [ "$kind" = sse ]; then
    # the OpenAI chat stream's content events repeated to ~1 MB
    big="$repo/t/fixtures/openai/zz-store-cost-$$.sse"
    python3 - "$repo/t/fixtures/openai/chat-response-stream.sse" "$big" <<'EOP'
import sys
events = [e for e in open(sys.argv[1]).read().split('\n\n') if e.strip()]
body = [e for e in events if '[DONE]' not in e and '"usage":{' not in e]
out, size = [], 0
while size < 1000000:
    for e in body:
        out.append(e)
        size += len(e) + 2
out += [e for e in events if '"usage":{' in e] + ['data: [DONE]']
open(sys.argv[2], 'w').write('\n\n'.join(out) + '\n\n')
EOP
    header="X-Fake-Fixture: openai/$(basename "$big")"
fi

valgrind --tool="$mode" --"$mode"-out-file="$out" \
    /usr/sbin/nginx -p "$d" -c "$d/nginx.conf" > "$d/vg.log" 2>&1 &
ng=$!
warm
post "$loc" /v1/chat/completions openai/chat-request.json "$header"
sleep 1
redis-cli -p $rp --scan --pattern 'llm:*' | while read -r k; do
    echo "stored $k $(redis-cli -p $rp strlen "$k")"
done
