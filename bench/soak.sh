#!/usr/bin/env bash
# Soak: a million mixed requests through ngx_llm_cache, with Redis
# restarted twice under load, then a report and a pass/fail exit status.
#
#   bench/soak.sh [requests=1000000] [connections=64] [threads=2]
#
# It builds the module (scripts/build.sh), copies the .so into a temporary
# directory and starts its own stack there, on its own ports:
#
#   nginx, 2 workers, ngx_llm_cache   127.0.0.1:18580
#   redis-server (no persistence)     127.0.0.1:16580
#   t/lib/fake_provider.py            127.0.0.1:18581
#
# wrk (bench/soak.lua) sends POST /v1/chat/completions with these bodies:
#
#   hit      ~90%  one of 300 fixed bodies: cached after their first miss
#   unique    ~7%  a new user message each time: always a miss
#   sfixed  ~1.5%  one of 50 fixed "stream": true bodies: cached SSE
#   sunique ~1.5%  a new "stream": true body each time: a streamed miss
#
# First a warm-up (20000 requests, fills the cache; its last 20% only
# cached bodies, so that wrk stops with no provider call in flight), then
# the measured run.
# At 1/3 and 2/3 of the run Redis is shut down (SHUTDOWN NOSAVE), left down
# for ~1 s and started again on the same port, empty. While it is down the
# module fails open: the provider answers, 200 with X-LLM-Cache: ERROR; the
# module reconnects by itself (its backoff and circuit breaker: see
# llm_cache_redis in README.md), after which the fixed bodies miss once
# more and are hits again.
#
# Reading the report:
#   requests/duration/req/s  answers counted by soak.lua (exactly the number
#                    asked for) over the wall time of the run (wrk's own
#                    count can be a few higher: answers that arrived after
#                    a thread had its share, or in the same event batch)
#   non-2xx, socket errors   must be 0 (a wrk "timeout" is an answer slower
#                    than SOAK_TIMEOUT, default 5 s)
#   X-LLM-Cache      counts of every value seen; ERROR should come only
#                    around the restarts (see "ERROR answers by second")
#   by kind          kind x X-LLM-Cache: a "unique"/"sunique" answered HIT
#                    would be a key collision (fails the run)
#   bodies not fitting their kind   a stream answered with JSON or without
#                    its final "data: [DONE]", or a JSON answer that is not
#                    an object (fails the run)
#   provider calls   the fake provider's count (GET /__stats, reset after
#                    the warm-up once it has settled); should equal the
#                    non-HIT requests in nginx's access log and the
#                    subrequests in its upstream log (every MISS/ERROR
#                    calls the provider once, a HIT never, a retried
#                    upstream try twice); wrk's non-HIT count can be up to
#                    <connections> lower (answers that came after a
#                    thread's share)
#   abandoned provider sockets   requests wrk left in flight when it
#                    stopped (499 in nginx's log) that were still stuck in
#                    the fake provider's accept queue: their closed sockets
#                    (FIN-WAIT-1) keep retransmitting and can reach the
#                    provider many seconds later, so the script waits for
#                    them (at most 30 s) before resetting or reading the
#                    provider's count; "left" ones make it unreliable
#   timeline         every 5 s: answered so far, provider calls minus the
#                    subrequests nginx has logged (logged when they end,
#                    so a few dozen in flight is normal; a step that stays
#                    is calls nginx does not know about), worker stats
#   redis clients    after the run: Redis's client count (less redis-cli
#                    itself), which should equal the sum of the workers'
#                    connections (llm_cache_redis pool=, per worker)
#   listen queue overflows   the host's TcpExt ListenOverflows during the
#                    run: the fake provider (Python, accept backlog 5)
#                    cannot take all the connections nginx opens at once
#                    when Redis goes away; each overflow costs a ~1 s
#                    handshake retransmit, which shows in the latency tail
#                    and in "slow provider subrequests"
#   workers          VmRSS and open fds of each nginx worker after the
#                    warm-up and after the run, and a timeline every 5 s;
#                    steady growth across the run would be a leak
#   error log        [emerg]/[alert]/[crit] lines and "exited on signal"
#                    (a crashed worker) must be absent; the most frequent
#                    messages are listed
#
# Exit status: 0 when nothing failed; 1 with the reasons after "RESULT:
# FAIL" (non-2xx answers, socket errors, a worker crash or changed worker
# pids, [alert]/[crit]/[emerg] lines, bodies not fitting their kind, unique
# bodies answered from the cache, or a run that did not finish). On failure
# (or with SOAK_KEEP=1) the temporary directory with all logs is kept.
#
# SOAK_REDIS=sentinel: Redis is a master, a replica and three sentinels
# (redis-server --sentinel, quorum 2, down-after 1000 ms) named by
# `llm_cache_redis sentinel=`; at 1/3 and 2/3 the current master is
# SIGKILLed (the old one comes back as a replica between the two).
# SOAK_REDIS=cluster: a Redis Cluster of 3 masters and 3 replicas named by
# `llm_cache_redis cluster=`; at 1/3 and 2/3 a master is SIGKILLed (and
# restarted once its replica took over, as a replica).  The report then
# gives, for each kill, when the new master was in place and how long the
# module answered ERROR ("caching off": from the kill to the last ERROR).
#
# Knobs (environment): SOAK_WARMUP=20000 SOAK_KEYS=300 SOAK_STREAM_KEYS=50
# SOAK_MISS_PCT=7 SOAK_STREAM_PCT=3 SOAK_TIMEOUT=5 (seconds, wrk --timeout)
# SOAK_MAX_SECONDS=1800 (wrk -d: the run is abandoned after that) SOAK_KEEP=1.
# Takes 1-3 minutes on 2 cores; run one soak at a time (it refuses to start
# when its ports are taken).
set -euo pipefail
shopt -s nullglob

repo=$(cd "$(dirname "$0")/.." && pwd)
total=${1:-1000000}
conns=${2:-64}
threads=${3:-2}
warm=${SOAK_WARMUP:-20000}
timeout=${SOAK_TIMEOUT:-5}
maxsecs=${SOAK_MAX_SECONDS:-1800}
keep=${SOAK_KEEP:-0}
mode=${SOAK_REDIS:-single}
case $mode in single|sentinel|cluster) ;; *) echo "soak: SOAK_REDIS is single, sentinel or cluster" >&2; exit 2;; esac
export SOAK_KEYS=${SOAK_KEYS:-300}
export SOAK_STREAM_KEYS=${SOAK_STREAM_KEYS:-50}
export SOAK_MISS_PCT=${SOAK_MISS_PCT:-7}
export SOAK_STREAM_PCT=${SOAK_STREAM_PCT:-3}
nport=18580; rport=16580; pport=18581

for v in "$total" "$conns" "$threads" "$warm"; do
    case $v in ''|*[!0-9]*) echo "usage: $0 [requests] [connections] [threads]" >&2; exit 2;; esac
done
if [ "$threads" -lt 1 ] || [ "$conns" -lt "$threads" ] || [ "$total" -lt 1 ]; then
    echo "soak: need requests >= 1 and connections >= threads >= 1" >&2
    exit 2
fi
for p in $nport $rport $pport $((rport + 1)) $((rport + 2)) $((rport + 3)) \
         $((rport + 4)) $((rport + 5)) $((rport + 10)) $((rport + 11)) $((rport + 12)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        echo "soak: port $p is in use (another soak running?)" >&2
        exit 1
    fi
done

"$repo/scripts/build.sh" >/dev/null || {
    echo "soak: build failed (if the module is being edited, retry later)" >&2
    exit 1
}

dir=$(mktemp -d /tmp/llm-soak.XXXXXX)
wpid=; prov_pid=

cleanup() {
    local rc=$?
    if [ -n "$wpid" ] && kill -0 "$wpid" 2>/dev/null; then
        kill "$wpid" 2>/dev/null || true
    fi
    if [ -f "$dir/logs/nginx.pid" ]; then
        kill -QUIT "$(cat "$dir/logs/nginx.pid")" 2>/dev/null || true
    fi
    if [ -n "$prov_pid" ]; then
        kill "$prov_pid" 2>/dev/null || true
    fi
    for p in $rport $((rport + 1)) $((rport + 2)) $((rport + 3)) $((rport + 4)) \
             $((rport + 5)) $((rport + 10)) $((rport + 11)) $((rport + 12)); do
        redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true
    done
    sleep 0.3
    if [ "$rc" -ne 0 ] || [ "$keep" = 1 ]; then
        echo "soak: logs kept in $dir" >&2
    else
        rm -rf "$dir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

chmod 0755 "$dir"   # workers run as nobody
mkdir -p "$dir/logs"
cp "$repo/build/ngx_llm_cache_module.so" "$dir/ngx_llm_cache_module.so"
so_sum=$(sha256sum "$dir/ngx_llm_cache_module.so" | cut -c1-12)
head=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')
dirty=$(git -C "$repo" status --porcelain -- config ngx_llm_cache_module 2>/dev/null \
        | awk '{print $2}' | sed 's|.*/||' | paste -sd, -)

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

start_redis() {
    redis-server --port $rport --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$dir" --daemonize yes --logfile "$dir/logs/redis.log" >/dev/null
    for _ in $(seq 50); do
        redis-cli -p $rport ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "soak: redis-server did not start" >&2
    return 1
}

redis_at() {   # port [extra redis-server arguments]
    local p=$1
    shift
    redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$dir" --daemonize yes --logfile "$dir/logs/redis-$p.log" \
        --pidfile "$dir/redis-$p.pid" "$@" >/dev/null
    for _ in $(seq 50); do
        redis-cli -p "$p" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "soak: redis-server :$p did not start" >&2
    return 1
}
redis_kill() { kill -9 "$(redis-cli -p "$1" info server | tr -d '\r' | sed -n 's/^process_id://p')" 2>/dev/null || true; }
sentinel_master() { redis-cli -p $((rport + 10)) sentinel get-master-addr-by-name mymaster 2>/dev/null | sed -n 2p | tr -d '\r'; }
cluster_masters() {   # ports of the masters that are up, by a live node's view
    local p
    for p in $rport $((rport + 1)) $((rport + 2)) $((rport + 3)) $((rport + 4)) $((rport + 5)); do
        if redis-cli -p "$p" ping >/dev/null 2>&1; then
            redis-cli -p "$p" cluster nodes | awk '$3 ~ /master/ && $3 !~ /fail/ && $8 == "connected" { split($2, a, /[:@]/); print a[2] }' | sort -n
            return
        fi
    done
}
cluster_ok() { redis-cli -p "$1" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; }

case $mode in
single)
    start_redis
    redis_conf="llm_cache_redis 127.0.0.1:$rport;"
    ;;
sentinel)
    redis_at $rport
    redis_at $((rport + 1)) --replicaof 127.0.0.1 $rport
    for s in 10 11 12; do
        cat > "$dir/sentinel-$s.conf" <<SCONF
port $((rport + s))
bind 127.0.0.1
daemonize yes
pidfile $dir/sentinel-$s.pid
logfile $dir/logs/sentinel-$s.log
dir $dir
sentinel monitor mymaster 127.0.0.1 $rport 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 4000
sentinel parallel-syncs mymaster 1
SCONF
        redis-server "$dir/sentinel-$s.conf" --sentinel >/dev/null
    done
    for _ in $(seq 100); do
        n=$(redis-cli -p $((rport + 10)) sentinel master mymaster 2>/dev/null | tr -d '\r' | awk 'p { print; exit } $0 == "num-other-sentinels" { p = 1 }')
        r=$(redis-cli -p $rport info replication | tr -d '\r' | sed -n 's/^connected_slaves://p')
        [ "${n:-0}" -ge 2 ] && [ "${r:-0}" -ge 1 ] && break
        sleep 0.2
    done
    redis_conf="llm_cache_redis sentinel=mymaster 127.0.0.1:$((rport + 10)) 127.0.0.1:$((rport + 11)) 127.0.0.1:$((rport + 12));"
    ;;
cluster)
    nodes=()
    for i in 0 1 2 3 4 5; do
        redis_at $((rport + i)) --cluster-enabled yes \
            --cluster-config-file "$dir/nodes-$((rport + i)).conf" \
            --cluster-node-timeout 1000
        nodes+=("127.0.0.1:$((rport + i))")
    done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >/dev/null
    for _ in $(seq 100); do cluster_ok $rport && break; sleep 0.2; done
    cluster_ok $rport || { echo "soak: the cluster did not form" >&2; exit 1; }
    sleep 2    # the replicas' first sync
    redis_conf="llm_cache_redis cluster=$(IFS=,; echo "${nodes[*]}");"
    ;;
esac

python3 "$repo/t/lib/fake_provider.py" --port $pport --redis-port $rport \
    > "$dir/logs/provider.log" 2>&1 &
prov_pid=$!
for _ in $(seq 50); do grep -qs READY "$dir/logs/provider.log" && break; sleep 0.1; done
grep -qs READY "$dir/logs/provider.log" || { echo "soak: provider did not start" >&2; exit 1; }

cat > "$dir/nginx.conf" <<CONF
load_module $dir/ngx_llm_cache_module.so;
worker_processes 2;
error_log $dir/logs/error.log notice;
pid $dir/logs/nginx.pid;
events { worker_connections 4096; }
http {
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    # every request but a 2xx HIT: for the ERROR timeline and the
    # provider-call reconciliation
    log_format soak '\$msec \$status \$llm_cache_status \$http_x_soak_kind';
    map "\$llm_cache_status:\$status" \$soak_log { "~^HIT:2" 0; default 1; }
    access_log $dir/logs/access.log soak buffer=64k flush=1s if=\$soak_log;
    # every subrequest to the provider, with each upstream try
    log_format up '\$msec \$status "\$upstream_status" "\$upstream_addr" \$http_x_soak_kind "\$upstream_connect_time" "\$upstream_header_time"';
    upstream llm_provider { server 127.0.0.1:$pport; keepalive 64; }
    $redis_conf
    server {
        listen 127.0.0.1:$nport;
        location /v1/ {
            llm_cache_pass /_llm;
            llm_cache_ttl 1h;
            add_header X-Soak-Kind \$http_x_soak_kind always;
        }
        location /_llm/ {
            internal;
            log_subrequest on;
            access_log $dir/logs/upstream.log up buffer=64k flush=1s;
            proxy_pass http://llm_provider/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Accept-Encoding "";
            proxy_buffering off;
            proxy_read_timeout 60s;
        }
    }
}
CONF

/usr/sbin/nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
for _ in $(seq 50); do [ -s "$dir/logs/nginx.pid" ] && break; sleep 0.1; done
mpid=$(cat "$dir/logs/nginx.pid")
sleep 0.5

workers() { ps -o pid= --ppid "$mpid" | awk '{print $1}' | sort -n; }
# "pid rss_kB fds redis_connections" for each worker
worker_stats() {
    local p rss fds rc socks
    socks=$(ss -tnpH state established "( dport >= :$rport and dport <= :$((rport + 5)) )" 2>/dev/null || true)
    for p in $(workers); do
        rss=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo '?')
        fds=$(ls "/proc/$p/fd" 2>/dev/null | wc -l)
        rc=$(grep -c "pid=$p," <<<"$socks" || true)
        echo "$p ${rss:-?} $fds $rc"
    done
}
# one line: "pid:rss:fds:redis pid:rss:fds:redis"
worker_line() { worker_stats | awk '{printf "%s:%s:%s:%s ", $1, $2, $3, $4}'; }

# the host's TCP listen queue overflows (SYNs dropped, retried after 1 s)
listen_overflows() {
    awk '$1 == "TcpExt:" { if (!h) { for (i = 2; i <= NF; i++) n[i] = $i; h = 1 }
         else for (i = 2; i <= NF; i++) if (n[i] == "ListenOverflows") print $i }' \
        /proc/net/netstat 2>/dev/null || echo 0
}

provider_calls() {
    local c
    c=$(curl -s -m 5 "http://127.0.0.1:$pport/__stats" | sed -n 's/^calls=//p' || true)
    echo "${c:-0}"
}

# Requests wrk leaves in flight when it stops are answered 499 by nginx,
# but one that was still stuck in the fake provider's full accept queue
# sits in a closed socket that the kernel keeps retransmitting, and can
# reach the provider (and count as a call) seconds later. Wait (at most
# 30 s) until no such socket to the provider is left.
provider_orphans() {
    ss -tnH state fin-wait-1 state closing state last-ack "( dport = :$pport )" \
        2>/dev/null | wc -l
}
wait_orphans() {
    local i
    for i in $(seq 150); do
        [ "$(provider_orphans)" -eq 0 ] && break
        sleep 0.2
    done
}

nrestart=0; last_up=0; restarts=()
restart_redis() {   # t0_ms
    local a b
    a=$(now_ms)
    redis-cli -p $rport shutdown nosave >/dev/null 2>&1 || true
    for _ in $(seq 50); do
        redis-cli -p $rport ping >/dev/null 2>&1 || break
        sleep 0.1
    done
    sleep 1
    start_redis
    b=$(now_ms)
    nrestart=$((nrestart + 1))
    restarts+=("$((a - $1)) $((b - $1))")
    last_up=$b
}

# a master SIGKILLed (sentinel, cluster): "killed_ms switched_ms" since t0,
# switched being when a new master serves; the old one comes back as a
# replica
kill_master() {   # t0_ms
    local a b m nm i p
    a=$(now_ms)
    if [ "$mode" = sentinel ]; then
        m=$(sentinel_master)
        redis_kill "$m"
        for _ in $(seq 300); do
            nm=$(sentinel_master)
            [ -n "$nm" ] && [ "$nm" != "$m" ] && break
            sleep 0.05
        done
        b=$(now_ms)
        redis_at "$m" --replicaof 127.0.0.1 "$nm"
        for _ in $(seq 100); do
            redis-cli -p "$m" info replication | grep -q 'master_link_status:up' && break
            sleep 0.1
        done
    else
        m=$(cluster_masters | sed -n "$((nrestart + 1))p")
        redis_kill "$m"
        p=$rport; [ "$m" = "$rport" ] && p=$((rport + 1))
        for _ in $(seq 300); do
            if [ "$(cluster_masters | grep -cv "^$m\$")" -ge 3 ] && cluster_ok "$p"; then
                break
            fi
            sleep 0.05
        done
        b=$(now_ms)
        redis_at "$m" --cluster-enabled yes \
            --cluster-config-file "$dir/nodes-$m.conf" --cluster-node-timeout 1000
        for i in $(seq 100); do cluster_ok "$m" && break; sleep 0.1; done
    fi
    nrestart=$((nrestart + 1))
    restarts+=("$((a - $1)) $((b - $1))")
    last_up=$(now_ms)
}

# drive NAME REQUESTS CHAOS TAIL: one wrk run of exactly REQUESTS answers;
# with CHAOS=1 restart Redis at 1/3 and 2/3 and sample the workers every
# 5 s; the last TAIL (a fraction) of the requests are cached bodies only
drive() {
    local name=$1 n=$2 chaos=$3 st="$dir/$1" files prog el next_sample=0 ndone c
    mkdir -p "$st"
    SOAK_TAIL_HITS=$4 SOAK_REQUESTS=$n SOAK_THREADS=$threads SOAK_STATE=$st SOAK_RUN="$name$$" \
        wrk -t"$threads" -c"$conns" -d"${maxsecs}s" --timeout "${timeout}s" \
        -s "$repo/bench/soak.lua" "http://127.0.0.1:$nport/v1/chat/completions" \
        > "$dir/$name.out" 2>&1 &
    wpid=$!
    t0=$(now_ms); t_end=
    while kill -0 "$wpid" 2>/dev/null; do
        files=("$st"/done.*)
        ndone=${#files[@]}
        if [ "$ndone" -ge "$threads" ]; then
            t_end=$(now_ms)
            kill -INT "$wpid" 2>/dev/null || true
            break
        fi
        files=("$st"/progress.*)
        prog=0
        if [ ${#files[@]} -gt 0 ]; then
            prog=$(awk '{s += $1} END {print s + 0}' "${files[@]}" 2>/dev/null || echo 0)
        fi
        el=$(( $(now_ms) - t0 ))
        if [ "$chaos" = 1 ]; then
            if [ "$el" -ge "$next_sample" ]; then
                c=$(provider_calls)   # the provider can be slow to accept
                echo "$el $prog $(now_ms) $c $(worker_line)" >> "$dir/samples"
                next_sample=$((next_sample + 5000))
            fi
            if [ "$nrestart" -lt 2 ] && [ "$prog" -ge $(( (nrestart + 1) * n / 3 )) ] \
               && [ $(( $(now_ms) - last_up )) -ge 3000 ]; then
                if [ "$mode" = single ]; then
                    restart_redis "$t0"
                else
                    kill_master "$t0"
                fi
            fi
        fi
        sleep 0.2
    done
    wait "$wpid" || true
    wpid=
    [ -n "$t_end" ] || t_end=$(now_ms)
}

val() {   # val FILE "name words": the number on the line "SOAK name words N"
    awk -v k="SOAK $2" '{ v = $NF; $NF = ""; sub(/ $/, "") } $0 == k { print v; f = 1 }
                        END { if (!f) print 0 }' "$1"
}

# ---------------------------------------------------------------- warm-up ----
echo "soak: warm-up, $warm requests ..." >&2
drive warm "$warm" 0 0.2
if [ "$(val "$dir/warm.out" requests)" -ne "$warm" ]; then
    cat "$dir/warm.out" >&2
    echo "soak: warm-up did not complete" >&2
    exit 1
fi
sleep 1
workers_before=$(workers | paste -sd' ' -)
stats_before=$(worker_stats)
orph_warm=$(provider_orphans)
wait_orphans
# and then until the provider's count settles
prev=-1
for _ in $(seq 20); do
    c=$(provider_calls)
    [ "$c" = "$prev" ] && break
    prev=$c
    sleep 1
done
curl -s -o /dev/null "http://127.0.0.1:$pport/__reset"
sleep 1
calls_start=$(provider_calls)   # 0 unless warm-up calls arrive even later

# -------------------------------------------------------------------- run ----
echo "soak: $total requests, $conns connections, $threads threads," \
     "Redis restarted at 1/3 and 2/3 ..." >&2
lo_before=$(listen_overflows)
drive main "$total" 1 0
lo_after=$(listen_overflows)
run_t0=$t0
run_ms=$((t_end - t0))
sleep 1
orph_main=$(provider_orphans)
wait_orphans
orph_left=$(provider_orphans)
workers_after=$(workers | paste -sd' ' -)
stats_after=$(worker_stats)
calls=$(provider_calls)
echo "$((run_ms + 1000)) $total $(now_ms) $calls $(worker_line)" >> "$dir/samples"
calls=$((calls - calls_start))
if [ "$mode" = single ]; then
    rclients=$(redis-cli -p $rport info clients | awk -F: '/^connected_clients/ {print $2 - 1}' | tr -d '\r')
    rkeys=$(redis-cli -p $rport dbsize | tr -d '\r')
else
    if [ "$mode" = sentinel ]; then masters=$(sentinel_master); else masters=$(cluster_masters); fi
    rclients=0; rkeys=0
    for m in $masters; do
        rclients=$((rclients + $(redis-cli -p "$m" info clients | tr -d '\r' | awk -F: '/^connected_clients/ {print $2 - 1}')))
        rkeys=$((rkeys + $(redis-cli -p "$m" dbsize | tr -d '\r')))
    done
fi

# stop nginx (flushes the access log) before reading its logs
kill -QUIT "$mpid" 2>/dev/null || true
for _ in $(seq 100); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done

# ----------------------------------------------------------------- report ----
out="$dir/main.out"
elog="$dir/logs/error.log"
got=$(val "$out" requests)
fail=()
note() { fail+=("$*"); }

secs=$(awk -v ms="$run_ms" 'BEGIN { printf "%.1f", ms / 1000 }')
rps=$(awk -v n="$got" -v ms="$run_ms" 'BEGIN { printf "%.0f", n * 1000 / ms }')
non2xx=$(awk '$1 == "SOAK" && $2 == "status" && ($3 < 200 || $3 > 299) { s += $4 } END { print s + 0 }' "$out")
statuses=$(awk '$1 == "SOAK" && $2 == "status" { printf "%s%s %s", sep, $3, $4; sep = ", " }' "$out")
se_c=$(val "$out" "sockerr connect"); se_r=$(val "$out" "sockerr read")
se_w=$(val "$out" "sockerr write"); se_t=$(val "$out" "sockerr timeout")
sockerr=$((se_c + se_r + se_w + se_t))
bad=$(awk '$1 == "SOAK" && $2 == "bad" { s += $4 } END { print s + 0 }' "$out")
badlist=$(awk '$1 == "SOAK" && $2 == "bad" { printf "%s%s %s", sep, $3, $4; sep = ", " }' "$out")
uniq_hits=$(( $(val "$out" "kind unique HIT") + $(val "$out" "kind sunique HIT") ))
lat() { awk -v u="$(val "$out" "latency-us $1")" 'BEGIN {
        if (u >= 1000000) printf "%.2fs", u / 1e6
        else if (u >= 1000) printf "%.1fms", u / 1e3
        else printf "%dus", u }'; }
nonhit_wrk=$(awk '$1 == "SOAK" && $2 == "cache" && $3 != "HIT" { s += $4 } END { print s + 0 }' "$out")
nonhit_log=$(awk -v t0="$run_t0" '$1 * 1000 >= t0 && $3 != "HIT" { n++ } END { print n + 0 }' \
             "$dir/logs/access.log")
# subrequests to the provider and their upstream tries (a retry on a broken
# keep-alive connection is a second try, and can be a second provider call)
read -r sub_log tries_log slow_conn slow_head < <(awk -v t0="$run_t0" '
    function slow(f,   k, c, i) {
        gsub(/"/, "", f); k = split(f, c, ", ")
        for (i = 1; i <= k; i++) if (c[i] + 0 >= 0.9) return 1
        return 0 }
    $1 * 1000 >= t0 { n++; t += split($4, a, ","); sc += slow($(NF - 1)); sh += slow($NF) }
    END { print n + 0, t + 0, sc + 0, sh + 0 }' "$dir/logs/upstream.log")
aborted_log=$(awk -v t0="$run_t0" '$1 * 1000 >= t0 && $2 == 499 { n++ } END { print n + 0 }' \
              "$dir/logs/access.log")
lvl() { grep -c "\[$1\]" "$elog" || true; }
n_emerg=$(lvl emerg); n_alert=$(lvl alert); n_crit=$(lvl crit)
n_error=$(lvl error); n_warn=$(lvl warn)
crashes=$(grep -c 'exited on signal' "$elog" || true)

[ "$got" -eq "$total" ] || note "only $got of $total requests answered (run did not finish)"
[ "$(val "$out" unfinished-threads)" -eq 0 ] || note "a wrk thread did not finish its share"
[ "$non2xx" -eq 0 ] || note "$non2xx non-2xx answers ($statuses)"
[ "$sockerr" -eq 0 ] || note "$sockerr socket errors"
[ "$bad" -eq 0 ] || note "$bad bodies not fitting their kind ($badlist)"
[ "$uniq_hits" -eq 0 ] || note "$uniq_hits unique bodies answered HIT"
[ "$crashes" -eq 0 ] || note "$crashes 'exited on signal' lines"
[ "$workers_before" = "$workers_after" ] || note "worker pids changed: $workers_before -> $workers_after"
[ $((n_emerg + n_alert + n_crit)) -eq 0 ] || note "$n_emerg emerg, $n_alert alert, $n_crit crit lines in the error log"

row() { printf '  %-32s %s\n' "$1" "$2"; }
echo
echo "ngx_llm_cache soak"
row "module" "ngx_llm_cache_module.so sha256:$so_sum (HEAD $head${dirty:+, uncommitted: $dirty})"
row "stack" "nginx :$nport (2 workers), redis :$rport ($mode), fake provider :$pport"
row "load" "$total requests, $conns connections, $threads threads; $SOAK_MISS_PCT% unique,"
row "" "$SOAK_STREAM_PCT% stream (half of them $SOAK_STREAM_KEYS fixed bodies), rest $SOAK_KEYS fixed bodies"
echo
printf '  %-32s %s\n' "metric" "value"
printf '  %-32s %s\n' "--------------------------------" "------------------------------------------"
row "requests answered" "$got (wrk completed $(val "$out" wrk-requests))"
row "duration" "$secs s"
row "requests/s" "$rps"
row "latency p50 / p99 / p99.9 / max" "$(lat p50) / $(lat p99) / $(lat p99.9) / $(lat max)"
row "HTTP status" "$statuses"
row "non-2xx answers" "$non2xx"
row "socket errors" "$sockerr (connect $se_c, read $se_r, write $se_w, timeout $se_t)"
for c in HIT MISS ERROR BYPASS; do
    row "X-LLM-Cache: $c" "$(val "$out" "cache $c")"
done
others=$(awk '$1 == "SOAK" && $2 == "cache" && $3 !~ /^(HIT|MISS|ERROR|BYPASS)$/ {
              printf "%s%s %s", sep, $3, $4; sep = ", " }' "$out")
row "X-LLM-Cache: other values" "${others:-none}"
row "bodies not fitting their kind" "$bad${badlist:+ ($badlist)}"
row "unique bodies answered HIT" "$uniq_hits"
if [ "$calls_start" -eq 0 ]; then
    row "provider calls" "$calls"
else
    row "provider calls" "$calls (and $calls_start late warm-up calls, after the reset)"
fi
row "abandoned provider sockets" "$orph_warm after the warm-up, $orph_main after the run, $orph_left left after waiting"
row "non-HIT requests, access log" "$nonhit_log (of which $aborted_log 499: in flight when wrk stopped)"
row "non-HIT answers, wrk" "$nonhit_wrk"
row "provider subrequests, nginx" "$sub_log, with $tries_log upstream tries"
i=0
for r in "${restarts[@]}"; do
    i=$((i + 1))
    set -- $r
    if [ "$mode" = single ]; then
        row "redis restart #$i" "$(awk -v a="$1" -v b="$2" 'BEGIN { printf "down at %.1f s, up at %.1f s", a / 1000, b / 1000 }')"
    else
        # caching off: from the kill to the end of the burst of ERRORs it
        # caused (the first gap of 500 ms between two; a lone timeout
        # under load later on is not the failover)
        row "master killed #$i" "$(awk -v t0="$run_t0" -v a="$1" -v b="$2" '
            $1 * 1000 >= t0 + a && $1 * 1000 <= t0 + a + 30000 && $3 == "ERROR" {
                ms = $1 * 1000 - t0 - a
                if (!n) first = ms
                else if (ms - last >= 500) done = 1
                if (!done) { n++; last = ms } }
            END { printf "at %.1f s, new master at +%d ms; %d ERROR answers, from +%d to +%d ms: caching off %d ms",
                         a / 1000, b - a, n, first, last, last }' <(sort -n "$dir/logs/access.log"))"
    fi
done
[ "$i" -eq 2 ] || { row "redis restarts" "$i (expected 2)"; note "$i Redis restarts or kills, expected 2"; }
row "redis clients / keys after run" "$rclients (workers' connections: $(awk '{printf "%s%s", sep, $4; sep = "+"}' <<<"$stats_after")) / $rkeys"
row "listen queue overflows (host)" "$((lo_after - lo_before)) during the run (each costs ~1 s)"
row "slow provider subrequests" "$slow_conn took >= 0.9 s to connect, $slow_head >= 0.9 s to headers"
row "error log" "emerg $n_emerg, alert $n_alert, crit $n_crit, error $n_error, warn $n_warn"
row "worker crashes" "$crashes 'exited on signal'; pids $workers_before -> $workers_after"

echo
printf '  %-8s %9s %9s %9s %9s %9s\n' kind answers HIT MISS ERROR other
for k in hit unique sfixed sunique; do
    awk -v k="$k" '$1 == "SOAK" && $2 == "kind" && $3 == k { n += $5; c[$4] += $5 }
        END { printf "  %-8s %9d %9d %9d %9d %9d\n", k, n, c["HIT"], c["MISS"], c["ERROR"],
                     n - c["HIT"] - c["MISS"] - c["ERROR"] }' "$out"
done

echo
echo "  nginx workers, after the warm-up (before) and after the run; redis = its TCP connections to Redis:"
printf '  %-8s %10s %10s %8s %7s %7s %7s %7s\n' worker "RSS kB" "RSS kB" growth fds fds redis redis
printf '  %-8s %10s %10s %8s %7s %7s %7s %7s\n' "" before after "" before after before after
while read -r p rss fds rc; do
    read -r _ rss2 fds2 rc2 < <(awk -v p="$p" '$1 == p' <<<"$stats_after"; echo "$p ? ? ?")
    printf '  %-8s %10s %10s %8s %7s %7s %7s %7s\n' "$p" "$rss" "$rss2" \
        "$(awk -v a="$rss" -v b="$rss2" 'BEGIN { if (b ~ /^[0-9]+$/) printf "%+d", b - a; else print "?" }')" \
        "$fds" "$fds2" "$rc" "$rc2"
done <<<"$stats_before"

echo
echo "  timeline (s, answered, provider calls - nginx subrequests so far," \
     "then per worker pid:RSS kB:fds:redis connections):"
awk -v t0="$run_t0" -v c0="$calls_start" '
    FNR == NR { if ($1 * 1000 >= t0) sub_t[++ns] = $1 * 1000; next }
    { while (j < ns && sub_t[j + 1] <= $3) j++
      printf "    %6.1f %8d %+6d  ", $1 / 1000, $2, $4 - c0 - j
      for (i = 5; i <= NF; i++) printf " %s", $i; print "" }' \
    <(sort -n "$dir/logs/upstream.log") "$dir/samples"

echo
echo "  ERROR answers by second of the run (access log; restarts at" \
     "$(for r in "${restarts[@]}"; do set -- $r; awk -v a="$1" 'BEGIN { printf "%.1f s ", a / 1000 }'; done | sed 's/ $//')):"
wins=$(for r in "${restarts[@]}"; do set -- $r; echo "$1 $2"; done | paste -sd' ' -)
awk -v t0="$run_t0" -v wins="$wins" '
    BEGIN { nw = split(wins, w, " ") }
    $1 * 1000 >= t0 && $3 == "ERROR" {
        ms = $1 * 1000 - t0; s = int(ms / 1000); per[s]++
        inwin = 0
        for (i = 1; i < nw; i += 2) if (ms >= w[i] - 500 && ms <= w[i + 1] + 6000) inwin = 1
        if (!inwin) out++
    }
    END {
        line = "   "
        for (s = 0; s <= 100000; s++) if (s in per) {
            line = line sprintf(" %ds:%d", s, per[s])
            if (length(line) > 90) { print line; line = "   " }
        }
        if (line != "   ") print line
        printf "    outside [restart - 0.5 s, back up + 6 s]: %d\n", out
    }' "$dir/logs/access.log"

echo
echo "  error log, most frequent messages (level [error] and above, and notices naming llm_cache/redis):"
grep -E '\[(emerg|alert|crit|error|warn)\]|\[notice\].*(llm|redis)' "$elog" \
    | sed -E 's/^[0-9\/]+ [0-9:]+ (\[[a-z]+\]) [0-9]+#[0-9]+: (\*[0-9]+ )?/\1 /; s/, client: .*//' \
    | sed -E 's/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -12 | sed 's/^/    /'
[ -s "$elog" ] || echo "    (empty)"

echo
if [ ${#fail[@]} -eq 0 ]; then
    echo "RESULT: PASS"
else
    echo "RESULT: FAIL"
    for f in "${fail[@]}"; do echo "  - $f"; done
    exit 1
fi
