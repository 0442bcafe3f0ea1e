#!/usr/bin/env bash
# Builds the module and runs the gateway on localhost:
#
#   nginx with ngx_llm_cache   127.0.0.1:8080   (conf.examples/gateway.conf)
#   redis-server               127.0.0.1:6380   (no persistence)
#   the fake provider          127.0.0.1:8081   (t/lib/fake_provider.py)
#
#   scripts/gateway.sh            install packages if missing, build, run
#                                 in the foreground until Ctrl-C
#   scripts/gateway.sh --start    the same, in the background
#   scripts/gateway.sh --stop     stop a background gateway
#
# State and logs live in run/gateway/.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
run="$repo/run/gateway"
mode=${1:-}

stop() {
    if [ -f "$run/logs/nginx.pid" ]; then
        /usr/sbin/nginx -p "$run/" -c conf/nginx.conf -s quit 2>/dev/null || true
    fi
    for name in provider redis; do
        if [ -f "$run/$name.pid" ]; then
            kill "$(cat "$run/$name.pid")" 2>/dev/null || true
            rm -f "$run/$name.pid"
        fi
    done
    sleep 0.3
}

if [ "$mode" = "--stop" ]; then
    stop
    echo "gateway stopped"
    exit 0
fi

need=()
for pkg in $("$repo/scripts/install-deps.sh" --list); do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "gateway.sh: installing ${need[*]}"
    "$repo/scripts/install-deps.sh"
fi

"$repo/scripts/build.sh"

stop
mkdir -p "$run/logs" "$run/modules" "$run/conf"
cp "$repo/build/ngx_llm_cache_module.so" "$run/modules/"
cp "$repo/conf.examples/gateway.conf" "$run/conf/nginx.conf"

redis-server --port 6380 --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$run" --logfile "$run/logs/redis.log" --daemonize no \
    < /dev/null > /dev/null 2>&1 &
echo $! > "$run/redis.pid"

/usr/bin/env python3 "$repo/t/lib/fake_provider.py" --port 8081 \
    --redis-port 6380 < /dev/null > "$run/logs/provider.log" 2>&1 &
echo $! > "$run/provider.pid"

for _ in $(seq 50); do
    if redis-cli -p 6380 ping >/dev/null 2>&1 \
       && grep -q READY "$run/logs/provider.log" 2>/dev/null; then
        break
    fi
    sleep 0.1
done

/usr/sbin/nginx -p "$run/" -c conf/nginx.conf -e logs/error.log -t -q
/usr/sbin/nginx -p "$run/" -c conf/nginx.conf -e logs/error.log

cat <<MSG
gateway running: http://127.0.0.1:8080/v1/...  (Redis 127.0.0.1:6380,
fake provider 127.0.0.1:8081, logs in run/gateway/logs/)

  curl -s -i http://127.0.0.1:8080/v1/chat/completions \\
       -H 'Content-Type: application/json' -H 'Authorization: Bearer sk-test' \\
       -d @t/fixtures/openai/chat-request.json

MSG

if [ "$mode" = "--start" ]; then
    echo "stop it with: scripts/gateway.sh --stop"
    exit 0
fi

trap 'stop; echo "gateway stopped"; exit 0' INT TERM
echo "Ctrl-C stops it"
while kill -0 "$(cat "$run/redis.pid")" 2>/dev/null; do
    sleep 1
done
stop
