#!/usr/bin/env bash
# Start or stop a background moto_server (local DynamoDB, KMS, SQS) on 127.0.0.1.
#
# Usage: scripts/moto.sh start PORT   start it (no-op if one of ours already answers there), wait until it answers
#        scripts/moto.sh stop PORT    stop the one started by `start PORT`
#        scripts/moto.sh reset PORT   wipe every resource in it (POST /moto-api/reset)
#        scripts/moto.sh status PORT  exit 0 if a moto_server answers there
#
# Pid and log live under .local/ (moto-PORT.pid, moto-PORT.log). Needs scripts/bootstrap.sh first.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cmd="${1:-}"
port="${2:-}"
if [[ -z "$cmd" || ! "$port" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 start|stop|reset|status PORT" >&2
    exit 2
fi

state="$root/.local"
pidfile="$state/moto-$port.pid"
logfile="$state/moto-$port.log"
url="http://127.0.0.1:$port"

log() { printf 'moto.sh: %s\n' "$*" >&2; }

answers() {
    curl -fsS -o /dev/null --max-time 1 "$url/moto-api/data.json" 2>/dev/null
}

our_pid() {
    [[ -f "$pidfile" ]] || return 1
    local pid
    pid="$(cat "$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

start() {
    if our_pid >/dev/null && answers; then
        log "already running on $url (pid $(cat "$pidfile"))"
        return 0
    fi
    if answers; then
        log "something else already answers on $url; refusing to start a second server"
        exit 1
    fi
    local bin="$root/.venv/bin/moto_server"
    if [[ ! -x "$bin" ]]; then
        log "$bin missing: run scripts/bootstrap.sh first"
        exit 1
    fi
    mkdir -p "$state"
    # setsid: its own process group, so Ctrl-C in a foreground script does not reach it and
    # `stop` can end the whole group (moto's werkzeug server may fork a child).
    setsid "$bin" -H 127.0.0.1 -p "$port" >"$logfile" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$pidfile"
    for _ in $(seq 1 100); do
        if answers; then
            log "started on $url (pid $pid, log ${logfile#"$root"/})"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "moto_server exited at start; last lines of $logfile:"
            tail -n 20 "$logfile" >&2 || true
            rm -f "$pidfile"
            exit 1
        fi
        sleep 0.1
    done
    log "moto_server did not answer on $url within 10 s; stopping it"
    stop
    exit 1
}

stop() {
    local pid
    if ! pid="$(our_pid)"; then
        rm -f "$pidfile"
        log "not running on port $port (no live pid in ${pidfile#"$root"/})"
        return 0
    fi
    # The pid is a process-group leader (setsid): signal the group.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid ignored SIGTERM; sending SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    log "stopped (port $port)"
}

reset() {
    curl -fsS -o /dev/null --max-time 5 -X POST "$url/moto-api/reset"
    log "reset $url"
}

case "$cmd" in
start) start ;;
stop) stop ;;
reset) reset ;;
status) answers ;;
*)
    echo "usage: $0 start|stop|reset|status PORT" >&2
    exit 2
    ;;
esac
