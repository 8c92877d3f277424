#!/usr/bin/env bash
# wagate's run command: the whole gateway on this machine, no AWS account needed.
#
#   scripts/dev.sh
#
# Starts, all on 127.0.0.1:
#   moto_server      :4566  DynamoDB, KMS, SQS, provisioned from template.yaml (stack wagate-local)
#   gowa-sim         :3000  a GOWA WhatsApp server (basic auth demo:demo-password, device demo-device),
#                           whose device webhook is the ingress: it posts signed receipts (delivered,
#                           then read) for every message it sends, and contacts' replies
#                    :3001  its control API
#   cargo lambda     :9000  the functions, rebuilt on change
#                           (http://127.0.0.1:9000/lambda-url/<function>/<path>)
#   the dashboard           http://127.0.0.1:9000/lambda-url/config-api/dashboard
#   wagate-dev event-sources   the template's event sources, as AWS runs them: the outbound
#                           queue's SQS mapping (batches to outbound-sender, partial batch
#                           responses, visibility timeout, redrive) and the health check's
#                           schedule (every minute)
# creates the demo tenant `demo` through the config API, prints ready-to-paste commands, and
# stays in the foreground until Ctrl-C, then stops everything it started.
#
# Environment (defaults in brackets):
#   WAGATE_DEV_MOTO_PORT [4566], WAGATE_DEV_SIM_PORT [3000], WAGATE_DEV_SIM_CONTROL_PORT [3001],
#   WAGATE_DEV_LAMBDA_PORT [9000]   the ports (all on 127.0.0.1)
#   WAGATE_DEV_STATE_DIR [.local]   state and logs (stack.env, jwt/, *.log)
#   WAGATE_DEV_STACK_NAME [wagate-local]
#   WAGATE_DEV_HEALTH_EVERY         run the health check every N seconds instead of the
#                                   template's rate(1 minute); 0 turns it off
#   WAGATE_DEV_RECEIPT_DELIVERED_MS [1000], WAGATE_DEV_RECEIPT_READ_MS [2000]
#                                   the simulator's receipts: delivered this long after a send,
#                                   read this long after delivered (`off`: none)
#   WAGATE_DEV_KINDS [none]         the other server kinds to run too: a comma list of waha,
#                                   evolution, meta, or `all`. Each gets its own simulator
#                                   (gowa-sim --kind) and demo tenant `demo-<kind>` (WAHA and
#                                   Evolution devices wired by wagate; Meta's callback set on
#                                   the simulator as one pastes it in Meta's console), so
#                                   `wagate-dev send --tenant demo-meta ...` works like demo's.
#   WAGATE_DEV_WAHA_PORT [3002], WAGATE_DEV_WAHA_CONTROL_PORT [3003],
#   WAGATE_DEV_EVOLUTION_PORT [3004], WAGATE_DEV_EVOLUTION_CONTROL_PORT [3005],
#   WAGATE_DEV_META_PORT [3006], WAGATE_DEV_META_CONTROL_PORT [3007]   their ports
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
started_at=$SECONDS

port_setting() {
    local name=$1 default=$2 value
    value="${!name:-$default}"
    if [[ ! "$value" =~ ^[0-9]+$ ]] || ((value < 1 || value > 65535)); then
        printf 'dev.sh: %s must be a port number, not %q\n' "$name" "$value" >&2
        exit 2
    fi
    echo "$value"
}
moto_port="$(port_setting WAGATE_DEV_MOTO_PORT 4566)"
sim_port="$(port_setting WAGATE_DEV_SIM_PORT 3000)"
sim_control_port="$(port_setting WAGATE_DEV_SIM_CONTROL_PORT 3001)"
lambda_port="$(port_setting WAGATE_DEV_LAMBDA_PORT 9000)"
kinds_setting="${WAGATE_DEV_KINDS:-}"
[[ "$kinds_setting" == all ]] && kinds_setting="waha,evolution,meta"
kinds=()
IFS=',' read -r -a kinds_asked <<<"$kinds_setting"
for kind in "${kinds_asked[@]}"; do
    kind="${kind// /}"
    [[ -z "$kind" ]] && continue
    case "$kind" in
    waha | evolution | meta) kinds+=("$kind") ;;
    *)
        printf 'dev.sh: WAGATE_DEV_KINDS takes waha, evolution, meta or all, not %q\n' "$kind" >&2
        exit 2
        ;;
    esac
done
declare -A kind_port kind_control_port
kind_port[waha]="$(port_setting WAGATE_DEV_WAHA_PORT 3002)"
kind_control_port[waha]="$(port_setting WAGATE_DEV_WAHA_CONTROL_PORT 3003)"
kind_port[evolution]="$(port_setting WAGATE_DEV_EVOLUTION_PORT 3004)"
kind_control_port[evolution]="$(port_setting WAGATE_DEV_EVOLUTION_CONTROL_PORT 3005)"
kind_port[meta]="$(port_setting WAGATE_DEV_META_PORT 3006)"
kind_control_port[meta]="$(port_setting WAGATE_DEV_META_CONTROL_PORT 3007)"
stack_name="${WAGATE_DEV_STACK_NAME:-wagate-local}"
state="${WAGATE_DEV_STATE_DIR:-$root/.local}"
mkdir -p "$state"
state="$(cd "$state" && pwd)"
receipt_delivered_ms="${WAGATE_DEV_RECEIPT_DELIVERED_MS:-1000}"
receipt_read_ms="${WAGATE_DEV_RECEIPT_READ_MS:-2000}"
health_every="${WAGATE_DEV_HEALTH_EVERY:-}"
sim_listen="127.0.0.1:$sim_port"
sim_control="127.0.0.1:$sim_control_port"
jwt_dir="$state/jwt"
env_file="$state/stack.env"
lambda="http://127.0.0.1:$lambda_port"
api="$lambda/lambda-url/config-api"
webhook_url="$lambda/lambda-url/webhook-ingress/webhooks/whatsapp/demo"

log() { printf 'dev.sh: %s\n' "$*" >&2; }
# A path as the user may type it: relative to the checkout when inside it.
shown() { local p=$1; echo "${p#"$root"/}"; }

if [[ -n "$health_every" && ! "$health_every" =~ ^[0-9]+$ ]]; then
    log "WAGATE_DEV_HEALTH_EVERY must be a number of seconds"
    exit 2
fi
for ms in "$receipt_delivered_ms" "$receipt_read_ms"; do
    [[ "$ms" =~ ^([0-9]+|off)$ ]] || {
        log "WAGATE_DEV_RECEIPT_*_MS must be milliseconds or off, not $ms"
        exit 2
    }
done

# --- processes this script started, stopped on exit ------------------------------------------
# Every process started here inherits WAGATE_DEV_RUN_ID, fresh for each run (so nothing but
# what this run started carries it) and written to $state/dev.run-id. The components run in
# process groups of their own (setsid), stopped group by group; cargo lambda watch starts
# each function in yet another group, which can outlive it, so whatever still carries this
# run's id afterwards is stopped too.
export WAGATE_DEV_RUN_ID="dev-$$-$RANDOM$RANDOM-$(date +%s%N)"
started_pids=()
moto_started=false
echo "$WAGATE_DEV_RUN_ID" >"$state/dev.run-id"

# Pids of the live processes of this run, this shell excluded (Linux /proc; elsewhere none).
run_processes() {
    local dir pid entry
    [[ -r /proc/self/environ ]] || return 0
    for dir in /proc/[0-9]*; do
        pid=${dir#/proc/}
        [[ "$pid" == "$$" || "$pid" == "$BASHPID" ]] && continue
        while IFS= read -r -d '' entry; do
            if [[ "$entry" == "WAGATE_DEV_RUN_ID=$WAGATE_DEV_RUN_ID" ]]; then
                echo "$pid"
                break
            fi
        done 2>/dev/null <"$dir/environ" || true
    done
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    local pid leftovers
    for pid in "${started_pids[@]}"; do
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    for pid in "${started_pids[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 -- "-$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
    if $moto_started; then
        bash scripts/moto.sh stop "$moto_port" || true
    fi
    leftovers="$(run_processes)"
    leftovers="${leftovers//$'\n'/ }"
    if [[ -n "${leftovers// /}" ]]; then
        log "stopping what outlived its group: $leftovers"
        # shellcheck disable=SC2086
        kill -TERM $leftovers 2>/dev/null || true
        for _ in $(seq 1 30); do
            leftovers="$(run_processes)"
            leftovers="${leftovers//$'\n'/ }"
            [[ -z "${leftovers// /}" ]] && break
            sleep 0.1
        done
        # shellcheck disable=SC2086
        [[ -z "${leftovers// /}" ]] || kill -KILL $leftovers 2>/dev/null || true
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
    log "$name started (pid $pid, log $(shown "$logfile"))"
    last_pid=$pid
}

kind_ports=()
for kind in "${kinds[@]}"; do
    kind_ports+=("${kind_port[$kind]}" "${kind_control_port[$kind]}")
done
for port in "$sim_port" "$sim_control_port" "$lambda_port" "${kind_ports[@]}"; do
    if ! port_free "$port"; then
        log "port 127.0.0.1:$port is in use; stop whatever holds it (an earlier dev.sh?) and retry,"
        log "or choose other ports (WAGATE_DEV_SIM_PORT, WAGATE_DEV_SIM_CONTROL_PORT, WAGATE_DEV_LAMBDA_PORT)"
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

bash scripts/moto.sh start "$moto_port"
moto_started=true

log "building wagate-dev, gowa-sim and the functions (the first start compiles them; later ones only check)"
cargo build --quiet --bin wagate-dev --bin gowa-sim
target_dir="${CARGO_TARGET_DIR:-$root/target}"
wagate_dev="$target_dir/debug/wagate-dev"
gowa_sim="$target_dir/debug/gowa-sim"
# Each function the way `cargo lambda watch` builds it (`cargo run --bin <name>`: its own
# feature set), so that the first invocation of each starts at once instead of compiling.
for function in $("$wagate_dev" functions --template template.yaml); do
    cargo build --quiet --bin "$function"
done

"$wagate_dev" jwt-keygen --dir "$jwt_dir"
"$wagate_dev" provision --template template.yaml --stack-name "$stack_name" \
    --jwt-dir "$jwt_dir" --env-out "$env_file" \
    --public-webhook-base-url "http://127.0.0.1:$lambda_port/lambda-url/webhook-ingress" >/dev/null

# --- WhatsApp server simulator -----------------------------------------------------------
start gowa-sim "$state/gowa-sim.log" "$gowa_sim" \
    --listen "$sim_listen" --control-listen "$sim_control" \
    --basic-auth demo:demo-password \
    --device "id=demo-device,jid=6281234567890@s.whatsapp.net,state=logged_in,webhook_url=$webhook_url,webhook_secret=secret" \
    --receipt-delivered-ms "$receipt_delivered_ms" --receipt-read-ms "$receipt_read_ms"
sim_pid=$last_pid
if ! wait_http "http://$sim_listen/health" 30 "$sim_pid"; then
    log "gowa-sim did not come up; last lines of its log:"
    tail -n 20 "$state/gowa-sim.log" >&2 || true
    exit 1
fi

# --- the other server kinds (WAGATE_DEV_KINDS) ----------------------------------------------
# One simulator each; its credentials and device are the demo tenant's below.
declare -A kind_device kind_pid
kind_device[waha]=default
kind_device[evolution]=demo
kind_device[meta]=106540352242922
demo_api_key="demo-api-key"
demo_meta_token="demo-meta-token"
demo_meta_app_secret="demo-app-secret"
demo_meta_verify_token="demo-verify-token"
for kind in "${kinds[@]}"; do
    args=(--kind "$kind" --listen "127.0.0.1:${kind_port[$kind]}"
        --control-listen "127.0.0.1:${kind_control_port[$kind]}"
        --receipt-delivered-ms "$receipt_delivered_ms" --receipt-read-ms "$receipt_read_ms")
    if [[ "$kind" == meta ]]; then
        # Meta's callback is set in Meta's console: here, the simulator's global webhook,
        # signed with the app secret.
        args+=(--api-key "$demo_meta_token"
            --webhook "$lambda/lambda-url/webhook-ingress/webhooks/whatsapp/demo-meta"
            --webhook-secret "$demo_meta_app_secret")
    else
        args+=(--api-key "$demo_api_key")
    fi
    start "gowa-sim ($kind)" "$state/gowa-sim-$kind.log" "$gowa_sim" "${args[@]}"
    kind_pid[$kind]=$last_pid
    if ! wait_http "http://127.0.0.1:${kind_control_port[$kind]}/_sim/status" 30 "$last_pid"; then
        log "gowa-sim ($kind) did not come up; last lines of its log:"
        tail -n 20 "$state/gowa-sim-$kind.log" >&2 || true
        exit 1
    fi
done

# --- the functions -------------------------------------------------------------------------
start "cargo lambda watch" "$state/lambda-watch.log" \
    cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$lambda_port" --env-file "$env_file"
watch_pid=$last_pid
if ! wait_http "$lambda/" 120 "$watch_pid"; then
    log "cargo lambda watch did not come up; last lines of its log:"
    tail -n 20 "$state/lambda-watch.log" >&2 || true
    exit 1
fi

# --- demo tenant ---------------------------------------------------------------------------
admin_token="$("$wagate_dev" token --dir "$jwt_dir" --admin --ttl-secs 43200)"
tenant_token="$("$wagate_dev" token --dir "$jwt_dir" --tenant demo --ttl-secs 43200)"
demo_body="{\"provider\":\"gowa\",\"primary\":{\"baseUrl\":\"http://$sim_listen\",\"credentials\":{\"type\":\"basic\",\"username\":\"demo\",\"password\":\"demo-password\"},\"deviceId\":\"demo-device\",\"region\":\"local\"},\"webhookSecrets\":[{\"id\":\"s1\",\"secret\":\"secret\"}],\"isActive\":true}"
log "creating the demo tenant"
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
    log "the stack stays up; see $(shown "$state/lambda-watch.log")"
    ;;
esac

for kind in "${kinds[@]}"; do
    base="http://127.0.0.1:${kind_port[$kind]}"
    case "$kind" in
    waha) endpoint="{\"baseUrl\":\"$base\",\"credentials\":{\"type\":\"apiKey\",\"key\":\"$demo_api_key\"},\"deviceId\":\"default\"}" ;;
    evolution) endpoint="{\"baseUrl\":\"$base\",\"credentials\":{\"type\":\"apiKey\",\"key\":\"$demo_api_key\"},\"deviceId\":\"demo\",\"webhookSourceCidrs\":[\"127.0.0.1/32\"]}" ;;
    meta) endpoint="{\"baseUrl\":\"$base\",\"credentials\":{\"type\":\"meta\",\"token\":\"$demo_meta_token\",\"appSecret\":\"$demo_meta_app_secret\",\"verifyToken\":\"$demo_meta_verify_token\"},\"deviceId\":\"${kind_device[meta]}\"}" ;;
    esac
    kind_body="{\"provider\":\"$kind\",\"primary\":$endpoint,\"webhookSecrets\":[{\"id\":\"s1\",\"secret\":\"secret-$kind\"}],\"isActive\":true}"
    code="$(curl -sS -o "$state/demo-$kind-tenant.json" -w '%{http_code}' --max-time 300 \
        -X POST "$api/tenants/demo-$kind/whatsapp-config" \
        -H "authorization: Bearer $admin_token" \
        -H 'content-type: application/json' \
        --data "$kind_body" || echo 000)"
    case "$code" in
    200 | 201) log "demo-$kind tenant created ($kind)" ;;
    409) log "demo-$kind tenant already exists (kept)" ;;
    *) log "creating the demo-$kind tenant answered HTTP $code: $(head -c 400 "$state/demo-$kind-tenant.json" 2>/dev/null || true)" ;;
    esac
done

# --- the event sources AWS would run: SQS mappings and schedules, from template.yaml -------
schedule_args=()
if [[ -n "$health_every" ]]; then
    schedule_args=(--schedule-every-secs "$health_every")
fi
start "event sources" "$state/event-sources.log" "$wagate_dev" event-sources \
    --template template.yaml --stack-name "$stack_name" --invoke-url "$lambda" "${schedule_args[@]}"
sources_pid=$last_pid

# An invoke event with a real token, for `cargo lambda invoke`.
sed "s/REPLACE_WITH_TOKEN/$admin_token/" events/config-api-get-whatsapp-config.json >"$state/config-api-get.json"

# What a user types to reach this stack from another terminal.
dev_cmd="target/debug/wagate-dev"
if [[ "$env_file" != "$root/.local/stack.env" ]]; then
    dev_cmd="WAGATE_DEV_ENV_FILE=$(shown "$env_file") $dev_cmd"
fi
reply_cmd="$dev_cmd"
if [[ "$sim_control_port" != 3001 ]]; then
    reply_cmd="GOWA_SIM_CONTROL_URL=http://$sim_control $reply_cmd"
fi

cat <<EOF

wagate is running locally (Ctrl-C stops it all).

  config API      $api/tenants/{tenantId}/whatsapp-config
  webhooks        http://127.0.0.1:$lambda_port/lambda-url/webhook-ingress/webhooks/whatsapp/{tenantId}
                  (PUBLIC_WEBHOOK_BASE_URL: the config API shows each tenant's as webhookUrl)
  dashboard       $api/dashboard
  GOWA simulator  http://$sim_listen (basic auth demo:demo-password), control http://$sim_control
  moto_server     $AWS_ENDPOINT_URL (stack $stack_name; variables in $(shown "$env_file"))
$(for kind in "${kinds[@]}"; do
    printf '  %-15s http://127.0.0.1:%s (tenant demo-%s), control http://127.0.0.1:%s\n' \
        "$kind simulator" "${kind_port[$kind]}" "$kind" "${kind_control_port[$kind]}"
done)

Send your first message (in another terminal, from $(shown "$root")):
  $dev_cmd send --tenant demo --to +6281234567890 --text "Booking confirmed" --wait
  $reply_cmd reply --from +6281234567890 --text "Thanks, see you Saturday"
  $dev_cmd inbound

Admin token (12 h; more with: target/debug/wagate-dev token --dir $(shown "$jwt_dir") --admin):
$admin_token

Demo tenant's token (for the dashboard):
$tenant_token

Try:
  TOKEN=\$(target/debug/wagate-dev token --dir $(shown "$jwt_dir") --admin)
  curl -sS -H "authorization: Bearer \$TOKEN" $api/tenants/demo/whatsapp-config
  cargo lambda invoke config-api --invoke-address 127.0.0.1 --invoke-port $lambda_port \\
       --data-file $(shown "$state/config-api-get.json")

The health check runs every ${health_every:-60}s (WAGATE_DEV_HEALTH_EVERY; 0 = never).
Logs: $(shown "$state")/event-sources.log (every batch and run), lambda-watch.log, gowa-sim.log;
      moto: $(shown "$root/.local/moto-$moto_port.log")
EOF
log "ready in $((SECONDS - started_at)) s"

# --- foreground until Ctrl-C or a component dies ------------------------------------------------
while true; do
    for pid in "$sim_pid" "$watch_pid" "$sources_pid" "${kind_pid[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "a component exited (pid $pid); stopping the rest"
            exit 1
        fi
    done
    sleep 1 &
    wait $! || true
done
