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
# the fixtures, and an Anthropic stream of a real answer's length: the
# fixture's events around 60 text deltas of a 260-word answer, cut every few
# words as Anthropic cuts them (the fixture itself has 2 deltas: 1 kB)
cp -r "$repo/t/fixtures" "$d/fixtures"
python3 - "$d/fixtures/anthropic" <<'PY'
import json, re, sys
d = sys.argv[1]
src = open(d + "/messages-response-stream.sse").read()
events = src.strip("\n").split("\n\n")
text = (
    "Our plans differ mainly in seats, support and data controls. Basic costs "
    "$9 per month for a single user, includes 10 GB of storage, community "
    "support and the standard integrations with Slack, GitHub and Google "
    "Drive. Pro is $29 per user per month: it adds shared workspaces, 100 GB "
    "per user, priority email support with a one business day response time, "
    "audit logs kept for 90 days and single sign-on through Okta or Azure AD. "
    "Enterprise is priced per seat with a minimum of 25 seats; it adds SCIM "
    "provisioning, a dedicated success manager, a 99.95% uptime commitment, "
    "data residency in the EU or the US, customer-managed encryption keys and "
    "unlimited audit log retention. Every plan can be billed monthly or "
    "yearly, and yearly billing saves two months. You can switch plans at any "
    "time from Settings, then Billing: an upgrade takes effect at once and is "
    "prorated, while a downgrade applies at the end of the current period. "
    "Nonprofits and schools get 40% off Pro after a short verification, and "
    "startups in our partner programs get six months of Pro at no cost. If "
    "you tell me your team size and which integrations you rely on, I can "
    "suggest the plan that fits best and estimate your yearly cost.")
words = re.findall(r"\S+\s*", text)
chunks, i, n = [], 0, 0
while i < len(words):
    k = 3 + (n % 4)
    chunks.append("".join(words[i:i + k]))
    i += k; n += 1
out = []
for e in events:
    if "content_block_delta" in e:
        continue
    if "content_block_stop" in e:
        for c in chunks:
            out.append("event: content_block_delta\ndata: " + json.dumps(
                {"type": "content_block_delta", "index": 0,
                 "delta": {"type": "text_delta", "text": c}},
                separators=(",", ":")))
    out.append(e.replace('"output_tokens":29', '"output_tokens":%d' % (len(words) * 4 // 3)))
open(d + "/messages-response-stream-long.sse", "w").write("\n\n".join(out) + "\n\n")
PY
python3 "$repo/t/lib/fake_provider.py" --port $pp --redis-port $rp \
    --fixtures "$d/fixtures" > "$d/fp.log" 2>&1 &
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
                "responses-sse:/v1/responses:openai/responses-request-stream.json" \
                "anthropic-sse-long:/v1/messages:anthropic/messages-request-stream.json:X-Fake-Fixture=anthropic/messages-response-stream-long.sse"
    do
        IFS=: read -r name path req hdr <<< "$spec"
        for m in off on; do
            redis-cli -p $rp flushall > /dev/null
            post $m "$path" "$req" "${hdr/=/: }" > /dev/null || true
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
