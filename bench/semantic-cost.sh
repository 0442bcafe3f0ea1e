#!/usr/bin/env bash
# What the semantic layer costs per request, measured on a gateway (nginx
# with the module, a private redis-server, the fake provider and embedder):
# for each case, the Redis commands the module sent (INFO commandstats),
# the embedding and provider calls (the fake's counters) and the latency
# nginx saw ($request_time), averaged over N requests.
#
#   exact hit         the same request again
#   miss, empty       a new partition (a new system prompt each time)
#   miss, populated   a new question in a partition of 200 entries
#   semantic hit      a paraphrase (placed at cosine 0.97) in that partition
#
#   bench/semantic-cost.sh [N=50]
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-50}
dir=$(mktemp -d /tmp/llm-semcost.XXXXXX)
nport=18580; rport=16580; pport=18581
base="http://127.0.0.1:$nport"

"$repo/scripts/build.sh" >/dev/null

cleanup() {
    [ -f "$dir/logs/nginx.pid" ] && kill -QUIT "$(cat "$dir/logs/nginx.pid")" 2>/dev/null
    [ -n "${ppid:-}" ] && kill "$ppid" 2>/dev/null
    redis-cli -p $rport shutdown nosave >/dev/null 2>&1 || true
    sleep 0.3
    rm -rf "$dir"
}
trap cleanup EXIT

chmod 0755 "$dir"
mkdir -p "$dir/logs"
redis-server --port $rport --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --logfile "$dir/logs/redis.log" >/dev/null
python3 "$repo/t/lib/fake_provider.py" --port $pport --redis-port $rport \
    > "$dir/logs/provider.log" 2>&1 &
ppid=$!
for _ in $(seq 50); do grep -q READY "$dir/logs/provider.log" && break; sleep 0.1; done

cat > "$dir/nginx.conf" <<CONF
load_module $repo/build/ngx_llm_cache_module.so;
worker_processes 1;
error_log $dir/logs/error.log warn;
pid $dir/logs/nginx.pid;
events { worker_connections 1024; }
http {
    log_format t '\$request_time \$llm_cache_status \$llm_cache_semantic_status';
    access_log $dir/logs/access.log t;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    upstream llm_provider { server 127.0.0.1:$pport; keepalive 16; }
    llm_cache_redis 127.0.0.1:$rport;
    server {
        listen 127.0.0.1:$nport;
        location /v1/ {
            llm_cache_pass /_llm;
            llm_cache_semantic on;
            llm_cache_semantic_embed /_embed;
            llm_cache_semantic_model fake-embed;
            llm_cache_semantic_dimensions 1536;
        }
        location /_llm/ {
            internal;
            proxy_pass http://llm_provider/v1/chat/completions;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
        location = /_embed {
            internal;
            proxy_pass http://llm_provider/v1/embeddings;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /__ { proxy_pass http://llm_provider; }
    }
}
CONF

/usr/sbin/nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
sleep 0.5

chat() {   # system, question
    printf '{"model":"gpt-4o-mini","messages":[{"role":"system","content":"%s"},{"role":"user","content":"%s"}]}' "$1" "$2"
}
post() {
    curl -s -o /dev/null -w '%header{x-llm-cache}\n' -X POST \
        -H 'Authorization: Bearer sk-bench' -H 'Content-Type: application/json' \
        --data-binary "$1" "$base/v1/chat/completions"
}
commands() {   # "get set zrange mget eval zrem" call counts
    redis-cli -p $rport info commandstats | tr -d '\r' | awk -F'[:=,]' '
        /^cmdstat_/ { c[substr($1, 9)] = $3 }
        END { printf "%d %d %d %d %d %d", c["get"], c["set"], c["zrange"],
                     c["mget"], c["eval"], c["zrem"] }'
}
embeds() { curl -s "$base/__embed/stats" | sed -n 's/^embed_calls=//p'; }
calls() { curl -s "$base/__stats" | sed -n 's/^calls=//p'; }

measure() {   # name, then a function that sends request i
    local name=$1 fn=$2 c0 e0 p0 i st
    sleep 0.3
    : > "$dir/logs/access.log"
    c0=$(commands); e0=$(embeds); p0=$(calls)
    declare -A seen=()
    for i in $(seq "$n"); do
        st=$($fn "$i")
        seen[$st]=$(( ${seen[$st]:-0} + 1 ))
    done
    sleep 0.5    # indexing after the answer
    local c e p
    c="$c0 $(commands)"; e=$(( $(embeds) - e0 )); p=$(( $(calls) - p0 ))
    awk -v name="$name" -v n="$n" -v c="$c" -v e="$e" -v p="$p" \
        -v seen="$(for k in "${!seen[@]}"; do printf '%s=%s ' "$k" "${seen[$k]}"; done)" '
        $1 ~ /^[0-9.]+$/ && $2 != "-" { t += $1; k++ }
        END {
            split(c, v, " ")
            # the EVAL that indexes runs one SET inside: not a round trip
            get = v[7] - v[1]; ev = v[11] - v[5]; set = v[8] - v[2] - ev
            zr = v[9] - v[3]; mg = v[10] - v[4]; zrem = v[12] - v[6]
            printf "%-16s round trips %.2f (GET %.2f SET %.2f ZRANGE %.2f MGET %.2f EVAL %.2f ZREM %.2f)  embed calls %.2f  provider calls %.2f  nginx time %.1f ms  (%s)\n",
                   name, (get + set + zr + mg + ev + zrem) / n, get / n,
                   set / n, zr / n, mg / n, ev / n, zrem / n, e / n, p / n,
                   1000 * t / k, seen
        }' "$dir/logs/access.log"
}

exact_hit() { post "$(chat 'You are terse.' 'What is the capital of France?')"; }
miss_empty() { post "$(chat "You are assistant number $1." 'What is the capital of France?')"; }
miss_populated() { post "$(chat 'You are a support agent.' "Tell me about product number $1 please")"; }
semantic_hit() {
    curl -s -o /dev/null "$base/__embed/pair?a=Question%20$1%20of%20the%20FAQ&b=Question%20$1%20from%20the%20FAQ&cos=0.97"
    post "$(chat 'You are a support agent.' "Question $1 from the FAQ")"
}

post "$(chat 'You are terse.' 'What is the capital of France?')" >/dev/null
for i in $(seq 200); do   # a populated partition, and the paraphrases' anchors
    curl -s -o /dev/null "$base/__embed/pair?a=Question%20$i%20of%20the%20FAQ&b=Question%20$i%20from%20the%20FAQ&cos=0.97"
    post "$(chat 'You are a support agent.' "Question $i of the FAQ")" >/dev/null
done

echo "per request, mean of $n (1536-dimension vectors, partition of 200+ entries):"
measure "exact hit" exact_hit
measure "miss, empty" miss_empty
measure "miss, populated" miss_populated
measure "semantic hit" semantic_hit

grep -E '\[(alert|crit|emerg)\]' "$dir/logs/error.log" && exit 1
echo "error log: no alert, crit or emerg"
