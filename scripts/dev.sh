#!/usr/bin/env bash
# wagate's run command: the whole gateway on this machine, no AWS account needed.
#
#   scripts/dev.sh
#
# Starts, all on 127.0.0.1:
#   moto_server      :4566  DynamoDB, KMS, SQS, provisioned from template.yaml (stack wagate-local)
#   gowa-sim         :3000  a GOWA WhatsApp server (basic auth demo:demo-password, device demo-device)
#                    :3001  its control API
#   cargo lambda     :9000  the functions, rebuilt on change
#                           (http://127.0.0.1:9000/lambda-url/<function>/<path>)
#   the dashboard           http://127.0.0.1:9000/lambda-url/config-api/dashboard
# and stands in for EventBridge: runs the health check every WAGATE_DEV_HEALTH_EVERY seconds
# (default 60, 0 turns it off) through cargo-lambda's invoke API, with
# events/health-check-schedule.json.
# creates the demo tenant `demo` through the config API, prints ready-to-paste requests, and
# stays in the foreground until Ctrl-C, then stops everything it started.
# State and logs: .local/ (stack.env, jwt/, *.log).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

moto_port=4566
sim_listen="127.0.0.1:3000"
sim_control="127.0.0.1:3001"
lambda_port=9000
stack_name="wagate-local"
state="$root/.local"
jwt_dir="$state/jwt"
env_file="$state/stack.env"
api="http://127.0.0.1:$lambda_port/lambda-url/config-api"

log() { printf 'dev.sh: %s\n' "$*" >&2; }

# --- processes this script started (process-group leaders), stopped on exit ----------------
started_pids=()
moto_started=false
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${started_pids[@]}"; do
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    for pid in "${started_pids[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
    if $moto_started; then
        bash scripts/moto.sh stop "$moto_port" || true
    fi
    log "stopped"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_http URL SECONDS PID: until URL gives any HTTP answer; fails early if PID died.
wait_http() {
    local url=$1 seconds=$2 pid=$3
    for _ in $(seq 1 $((seconds * 5))); do
        if [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" 2>/dev/null || true)" != "000" ]]; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.2
    done
    return 1
}

# start NAME LOG COMMAND...: in the background, in its own process group.
start() {
    local name=$1 logfile=$2
    shift 2
    setsid "$@" >"$logfile" 2>&1 </dev/null &
    local pid=$!
    started_pids+=("$pid")
    log "$name started (pid $pid, log ${logfile#"$root"/})"
    last_pid=$pid
}

for port in 3000 3001 "$lambda_port"; do
    if ! port_free "$port"; then
        log "port 127.0.0.1:$port is in use; stop whatever holds it (an earlier dev.sh?) and retry"
        exit 1
    fi
done

# --- tools, local AWS, keys ----------------------------------------------------------------
bash scripts/bootstrap.sh
export PATH="$root/.venv/bin:$PATH"
export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
export AWS_REGION="us-east-1"
export AWS_DEFAULT_REGION="us-east-1"
export AWS_ACCESS_KEY_ID="test"
export AWS_SECRET_ACCESS_KEY="test"
unset AWS_SESSION_TOKEN AWS_PROFILE
export AWS_EC2_METADATA_DISABLED="true"
export SAM_CLI_TELEMETRY=0

mkdir -p "$state"
bash scripts/moto.sh start "$moto_port"
moto_started=true

log "building wagate-dev and gowa-sim"
cargo build --quiet -p wagate-devstack --bin wagate-dev -p gowa-sim --bin gowa-sim
target_dir="${CARGO_TARGET_DIR:-$root/target}"
wagate_dev="$target_dir/debug/wagate-dev"
gowa_sim="$target_dir/debug/gowa-sim"

"$wagate_dev" jwt-keygen --dir "$jwt_dir"
"$wagate_dev" provision --template template.yaml --stack-name "$stack_name" \
    --jwt-dir "$jwt_dir" --env-out "$env_file" \
    --public-webhook-base-url "http://127.0.0.1:$lambda_port/lambda-url/webhook-ingress" >/dev/null

# --- WhatsApp server simulator -----------------------------------------------------------
start gowa-sim "$state/gowa-sim.log" "$gowa_sim" \
    --listen "$sim_listen" --control-listen "$sim_control" \
    --basic-auth demo:demo-password \
    --device id=demo-device,jid=6281234567890@s.whatsapp.net,state=logged_in
sim_pid=$last_pid
if ! wait_http "http://$sim_listen/health" 30 "$sim_pid"; then
    log "gowa-sim did not come up; last lines of its log:"
    tail -n 20 "$state/gowa-sim.log" >&2 || true
    exit 1
fi

# --- the functions -------------------------------------------------------------------------
start "cargo lambda watch" "$state/lambda-watch.log" \
    cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$lambda_port" --env-file "$env_file"
watch_pid=$last_pid
if ! wait_http "http://127.0.0.1:$lambda_port/" 120 "$watch_pid"; then
    log "cargo lambda watch did not come up; last lines of its log:"
    tail -n 20 "$state/lambda-watch.log" >&2 || true
    exit 1
fi

# --- demo tenant ---------------------------------------------------------------------------
admin_token="$("$wagate_dev" token --dir "$jwt_dir" --admin --ttl-secs 43200)"
tenant_token="$("$wagate_dev" token --dir "$jwt_dir" --tenant demo --ttl-secs 43200)"
demo_body='{"provider":"gowa","primary":{"baseUrl":"http://127.0.0.1:3000","credentials":{"type":"basic","username":"demo","password":"demo-password"},"deviceId":"demo-device","region":"local"},"webhookSecrets":[{"id":"s1","secret":"secret"}],"isActive":true}'
log "creating the demo tenant (the first request compiles config-api; this can take a few minutes)"
code="$(curl -sS -o "$state/demo-tenant.json" -w '%{http_code}' --max-time 900 \
    -X POST "$api/tenants/demo/whatsapp-config" \
    -H "authorization: Bearer $admin_token" \
    -H 'content-type: application/json' \
    --data "$demo_body" || echo 000)"
case "$code" in
200 | 201) log "demo tenant created" ;;
409) log "demo tenant already exists (kept)" ;;
*)
    log "creating the demo tenant answered HTTP $code: $(head -c 400 "$state/demo-tenant.json" 2>/dev/null || true)"
    log "the stack stays up; see .local/lambda-watch.log"
    ;;
esac

health_every="${WAGATE_DEV_HEALTH_EVERY:-60}"
[[ "$health_every" =~ ^[0-9]+$ ]] || { log "WAGATE_DEV_HEALTH_EVERY must be a number of seconds"; exit 2; }

# An invoke event with a real token, for `cargo lambda invoke`.
sed "s/REPLACE_WITH_TOKEN/$admin_token/" events/config-api-get-whatsapp-config.json >"$state/config-api-get.json"

cat <<EOF

wagate is running locally (Ctrl-C stops it all).

  config API      $api/tenants/{tenantId}/whatsapp-config
  webhooks        http://127.0.0.1:$lambda_port/lambda-url/webhook-ingress/webhooks/whatsapp/{tenantId}
                  (PUBLIC_WEBHOOK_BASE_URL: the config API shows each tenant's as webhookUrl)
  GOWA simulator  http://$sim_listen (basic auth demo:demo-password), control http://$sim_control
  moto_server     $AWS_ENDPOINT_URL (stack $stack_name; variables in ${env_file#"$root"/})

Admin token (12 h; more with: $wagate_dev token --dir $jwt_dir --admin):
$admin_token

Try:
  TOKEN=\$($wagate_dev token --dir $jwt_dir --admin)
  curl -sS -H "authorization: Bearer \$TOKEN" $api/tenants/demo/whatsapp-config
  curl -sS -H "authorization: Bearer $tenant_token" \\
       $api/tenants/demo/whatsapp-config
  curl -sS -X POST -H "authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
       --data '$demo_body' \\
       $api/tenants/demo/whatsapp-config
  cargo lambda invoke config-api --invoke-address 127.0.0.1 --invoke-port $lambda_port \\
       --data-file ${state#"$root"/}/config-api-get.json

Dashboard: http://127.0.0.1:$lambda_port/lambda-url/config-api/dashboard
  sign in with the admin token above, or the demo tenant's:
$tenant_token

The health check runs every ${health_every}s (WAGATE_DEV_HEALTH_EVERY; 0 = never), or now with:
  cargo lambda invoke health-check --invoke-address 127.0.0.1 --invoke-port $lambda_port \\
       --data-file events/health-check-schedule.json

Logs: ${state#"$root"/}/lambda-watch.log, ${state#"$root"/}/health-check-runs.log, ${state#"$root"/}/gowa-sim.log, ${state#"$root"/}/moto-$moto_port.log
EOF

# --- foreground until Ctrl-C or a component dies; the health check on its schedule -----------
health_url="http://127.0.0.1:$lambda_port/2015-03-31/functions/health-check/invocations"
next_health=$SECONDS
health_pid=""
while true; do
    if ((health_every > 0 && SECONDS >= next_health)); then
        next_health=$((SECONDS + health_every))
        # One run at a time (the first one compiles the function).
        if [[ -z "$health_pid" ]] || ! kill -0 "$health_pid" 2>/dev/null; then
            {
                printf '%s ' "$(date -u +%FT%TZ)"
                curl -sS --max-time 600 -X POST -H 'content-type: application/json' \
                    --data-binary @events/health-check-schedule.json "$health_url" || true
                echo
            } >>"$state/health-check-runs.log" 2>&1 &
            health_pid=$!
        fi
    fi
    for pid in "$sim_pid" "$watch_pid"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "a component exited (pid $pid); stopping the rest"
            exit 1
        fi
    done
    sleep 1 &
    wait $! || true
done
