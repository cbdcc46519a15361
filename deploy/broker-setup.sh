#!/usr/bin/env bash
# Apply broker-config/definitions.json to a running RabbitMQ and give the benchop users their passwords.
#
#   broker-setup.sh [--definitions FILE] [--vhost NAME] [--user-prefix P] [--secrets-dir DIR] [--node NODE]
#                   [--cluster-nodes N]
#
# Passwords come from the environment (BENCHOP_BAAS_PASSWORD, BENCHOP_WORKER_PASSWORD,
# BENCHOP_MONITOR_PASSWORD) or else from DIR/rabbitmq-{baas,worker,monitor}.password (default
# /etc/benchop/secrets). Nothing is generated here: deploy/provision.sh generates the files, compose passes
# the variables from .env. Passwords must match [A-Za-z0-9._~-]{16,} so they can stand in an AMQP URL.
#
# Idempotent: the import re-applies vhost, permissions, policies, exchanges, queues and bindings; it also
# resets the users' passwords to blank (definitions.json holds no secret), so the passwords are set again
# right after it. Connected services are not affected; one reconnecting in that instant retries.
#
# --cluster-nodes N waits until N nodes of a cluster are running before importing, so the quorum queues
# the import declares get a replica on every node.
#
# --vhost / --user-prefix rewrite the names in a private copy of the definitions (tests use a fresh vhost
# and unique users). Uses only bash, sed and rabbitmqctl (runs in the official rabbitmq image too).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
definitions="$here/../broker-config/definitions.json"
vhost=benchop
prefix=benchop
secrets_dir=/etc/benchop/secrets
node_args=()
wait_secs=120
cluster_nodes=1

usage() { sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --definitions) definitions="$2"; shift 2 ;;
        --vhost) vhost="$2"; shift 2 ;;
        --user-prefix) prefix="$2"; shift 2 ;;
        --secrets-dir) secrets_dir="$2"; shift 2 ;;
        --node) node_args=(-n "$2"); shift 2 ;;
        --wait) wait_secs="$2"; shift 2 ;;
        --cluster-nodes) cluster_nodes="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "broker-setup.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done

log() { echo "broker-setup: $*" >&2; }
die() { log "error: $*"; exit 1; }
ctl() { rabbitmqctl "${node_args[@]}" -q "$@"; }

command -v rabbitmqctl >/dev/null || die "rabbitmqctl not found (Debian/Ubuntu: apt-get install rabbitmq-server)"
[ -r "$definitions" ] || die "cannot read $definitions"
[[ "$vhost" =~ ^[A-Za-z0-9._-]+$ ]] || die "bad vhost name $vhost"
[[ "$prefix" =~ ^[A-Za-z0-9._-]+$ ]] || die "bad user prefix $prefix"
[[ "$cluster_nodes" =~ ^[1-9][0-9]*$ ]] || die "bad --cluster-nodes $cluster_nodes"

password_for() { # role → password on stdout
    local role="$1" var file
    var="BENCHOP_${role^^}_PASSWORD"
    file="$secrets_dir/rabbitmq-$role.password"
    local pw="${!var:-}"
    if [ -z "$pw" ] && [ -r "$file" ]; then pw="$(tr -d '\n' <"$file")"; fi
    [ -n "$pw" ] || die "no password for $role: set $var or write $file"
    [[ "$pw" =~ ^[A-Za-z0-9._~-]{16,}$ ]] || die "the $role password must be 16+ characters of [A-Za-z0-9._~-]"
    printf '%s' "$pw"
}
# Resolve every password before touching the broker, so a missing one changes nothing.
declare -A passwords
for role in baas worker monitor; do passwords[$role]="$(password_for "$role")"; done

# Wait for the node (it may still be booting, e.g. right after `docker compose up` or a restart).
deadline=$((SECONDS + wait_secs))
until ctl await_startup --timeout 10 >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "RabbitMQ did not answer within ${wait_secs}s (rabbitmqctl ${node_args[*]} await_startup)"
    sleep 2
done
if [ "$cluster_nodes" -gt 1 ]; then
    ctl await_online_nodes "$cluster_nodes" --timeout "$wait_secs" >/dev/null \
        || die "fewer than $cluster_nodes cluster nodes are running after ${wait_secs}s (rabbitmqctl cluster_status)"
fi

# The definitions go in on stdin (no path: 3.10 rejects "-"): rabbitmqctl may run as another user (Debian's wrapper switches to
# rabbitmq) or in another container than the file, and it sends the content to the node anyway.
sed -e "s/\"benchop\"/\"$vhost\"/g" \
    -e "s/\"benchop-\\(baas\\|worker\\|monitor\\)\"/\"$prefix-\\1\"/g" \
    "$definitions" | ctl import_definitions --format json >/dev/null
for role in baas worker monitor; do
    user="$prefix-$role"
    # The import is applied asynchronously by some versions: retry until the user exists.
    for _ in $(seq 1 30); do
        if ctl change_password "$user" "${passwords[$role]}" >/dev/null 2>&1; then continue 2; fi
        sleep 1
    done
    die "could not set the password of $user"
done
log "vhost $vhost and users $prefix-{baas,worker,monitor} are set up"
