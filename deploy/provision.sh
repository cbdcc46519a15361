#!/usr/bin/env bash
# Install and start benchop on this machine: the whole stack (RabbitMQ set-up, baas, monitor, N workers)
# or workers only that join an existing broker. Idempotent: run it again to upgrade binaries, change the
# number of workers or re-apply the broker definitions; secrets are generated once and kept.
#
#   provision.sh [--role all|worker] [options]
#
# Binaries (one of; with neither, those already installed are kept):
#   --bin-dir DIR         take baas, worker, monitor, benchop from DIR (e.g. target/release)
#   --release-url URL     download a tarball made by deploy/package.sh (https://…, file://…)
#   --release-sha256 HEX  check the tarball against this digest
# Layout and mode:
#   --prefix DIR          install root (default /): DIR/opt/benchop, DIR/etc/benchop, DIR/var/lib/benchop,
#                         DIR/etc/systemd/system, DIR/etc/rabbitmq
#   --no-systemd          start the processes directly (pid files in DIR/run/benchop, logs in
#                         DIR/var/log/benchop) instead of installing and starting systemd units
#   --stop                stop the processes a --no-systemd run started under --prefix, then exit
#   --install-packages    apt-get install what the role needs (rabbitmq-server, nftables, curl)
#   --firewall            write DIR/etc/nftables.conf (SSH, 8080/5555 from --http-allow, AMQP — 5671 with
#                         TLS, else 5672 — from --amqp-allow, nothing else) and load it when DIR is /
# TLS between machines (role all; on by default):
#   --no-tls              no TLS listener (remote workers then use plain AMQP on 5672)
#   --tls-port P          the broker's AMQP-over-TLS port (default 5671)
#   --tls-names LIST      more comma-separated DNS names / IPs for the broker certificate (it always holds
#                         localhost, 127.0.0.1, the host name, its FQDN and the addresses of `hostname -I`)
#                         Without DIR/etc/rabbitmq/tls/server.pem, a CA (key in DIR/etc/benchop/secrets) and
#                         a server certificate are generated with openssl; the CA to give worker VMs is
#                         DIR/etc/benchop/broker-ca.pem. Bring your own: put server.pem, server-key.pem and
#                         ca.pem in DIR/etc/rabbitmq/tls/ and the CA in DIR/etc/benchop/broker-ca.pem.
# Services:
#   --workers N           worker instances on this machine (default 1: kernels already use every core)
#   --baas-addr A         default 0.0.0.0:8080        --monitor-addr A   default 0.0.0.0:5555
#   --amqp-host H:P       broker address for role all (default 127.0.0.1:5672)
#   --amqp-url URL        role worker: the broker to join (or env AMQP_URL, or DIR/etc/benchop/worker.env);
#                         amqps://…:5671/benchop?cacertfile=/etc/benchop/broker-ca.pem verifies the broker
#   --vhost NAME          default benchop           --user-prefix P    default benchop (users P-baas, …)
#   --http-allow CIDRS    comma-separated sources allowed to 8080/5555 (default 0.0.0.0/0,::/0)
#   --amqp-allow CIDRS    comma-separated sources allowed to AMQP (default none; remote workers' networks)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src_root="$(cd "$here/.." && pwd)" # holds deploy/ and broker-config/ (a checkout or a release tarball)

role=all
prefix=/
systemd=1
stop_only=0
install_packages=0
firewall=0
bin_dir=""
release_url=""
release_sha256=""
workers=1
baas_addr=0.0.0.0:8080
monitor_addr=0.0.0.0:5555
amqp_host=127.0.0.1:5672
amqp_url=""
vhost=benchop
user_prefix=benchop
http_allow="0.0.0.0/0,::/0"
amqp_allow=""
tls=1
tls_port=5671
tls_names=""

usage() { sed -n '2,42p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --role) role="$2"; shift 2 ;;
        --prefix) prefix="$2"; shift 2 ;;
        --no-systemd) systemd=0; shift ;;
        --stop) stop_only=1; shift ;;
        --install-packages) install_packages=1; shift ;;
        --firewall) firewall=1; shift ;;
        --bin-dir) bin_dir="$2"; shift 2 ;;
        --release-url) release_url="$2"; shift 2 ;;
        --release-sha256) release_sha256="$2"; shift 2 ;;
        --workers) workers="$2"; shift 2 ;;
        --baas-addr) baas_addr="$2"; shift 2 ;;
        --monitor-addr) monitor_addr="$2"; shift 2 ;;
        --amqp-host) amqp_host="$2"; shift 2 ;;
        --amqp-url) amqp_url="$2"; shift 2 ;;
        --vhost) vhost="$2"; shift 2 ;;
        --user-prefix) user_prefix="$2"; shift 2 ;;
        --http-allow) http_allow="$2"; shift 2 ;;
        --amqp-allow) amqp_allow="$2"; shift 2 ;;
        --no-tls) tls=0; shift ;;
        --tls-port) tls_port="$2"; shift 2 ;;
        --tls-names) tls_names="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "provision.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

log() { echo "provision: $*" >&2; }
die() { log "error: $*"; exit 1; }

case "$role" in all|worker) ;; *) die "--role must be all or worker" ;; esac
[[ "$workers" =~ ^[0-9]+$ ]] && [ "$workers" -ge 0 ] && [ "$workers" -le 64 ] || die "--workers must be 0..64"
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"
root="${prefix%/}" # "" for /, so paths read $root/etc/…
real_root=0; [ -z "$root" ] && real_root=1

opt="$root/opt/benchop"
etc="$root/etc/benchop"
secrets="$etc/secrets"
data="$root/var/lib/benchop"
units="$root/etc/systemd/system"
run_dir="$root/run/benchop"
log_dir="$root/var/log/benchop"

# ---------------------------------------------------------------- --no-systemd process management
pid_alive() { # pidfile → 0 when its process is one of ours and alive
    local pid exe
    [ -r "$1" ] || return 1
    pid="$(cat "$1")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
    [[ "$exe" == "$opt/bin/"* ]]
}

stop_direct() {
    local f pid any=0
    [ -d "$run_dir" ] || return 0
    for f in "$run_dir"/*.pid; do
        [ -e "$f" ] || continue
        if pid_alive "$f"; then
            pid="$(cat "$f")"
            kill -TERM "$pid" 2>/dev/null || true
            any=1
        fi
    done
    if [ $any = 1 ]; then
        # Workers drain running tasks for WORKER_DRAIN_SECS (30 s by default) before they exit.
        for _ in $(seq 1 400); do
            local alive=0
            for f in "$run_dir"/*.pid; do [ -e "$f" ] && pid_alive "$f" && alive=1; done
            [ $alive = 0 ] && break
            sleep 0.1
        done
        for f in "$run_dir"/*.pid; do
            [ -e "$f" ] && pid_alive "$f" && kill -KILL "$(cat "$f")" 2>/dev/null || true
        done
    fi
    rm -f "$run_dir"/*.pid
}

start_direct() { # name binary envfile [VAR=value…]
    local name="$1" binary="$2" envfile="$3"
    shift 3
    mkdir -p "$run_dir" "$log_dir"
    (
        set -a
        # shellcheck disable=SC1090
        . "$envfile"
        for kv in "$@"; do export "${kv?}"; done
        set +a
        cd "$data"
        exec setsid "$opt/bin/$binary" </dev/null >>"$log_dir/$name.log" 2>&1
    ) &
    echo $! >"$run_dir/$name.pid"
    log "started $name (pid $!, log $log_dir/$name.log)"
}

if [ $stop_only = 1 ]; then
    stop_direct
    log "stopped the processes under $prefix"
    exit 0
fi

# ---------------------------------------------------------------- packages, user
if [ $install_packages = 1 ]; then
    pkgs=(curl ca-certificates)
    [ "$role" = all ] && pkgs+=(rabbitmq-server)
    [ $firewall = 1 ] && pkgs+=(nftables)
    [ $systemd = 1 ] || pkgs+=(util-linux)
    log "installing ${pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}"
fi

service_user=""
if [ $real_root = 1 ] && [ $systemd = 1 ]; then
    service_user=benchop
    if ! id -u benchop >/dev/null 2>&1; then
        useradd --system --user-group --home-dir /var/lib/benchop --no-create-home --shell /usr/sbin/nologin benchop
        log "created system user benchop"
    fi
fi

install -d -m 0755 "$opt" "$opt/bin" "$opt/share" "$root/etc"
install -d -m 0700 "$etc" "$secrets"
install -d -m 0750 "$data"
[ -n "$service_user" ] && chown "$service_user:$service_user" "$data"

# ---------------------------------------------------------------- binaries
binaries=(baas worker monitor benchop)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [ -n "$release_url" ]; then
    command -v curl >/dev/null || die "curl is needed for --release-url (apt-get install curl)"
    log "downloading $release_url"
    curl -fsSL --retry 5 --retry-delay 2 -o "$tmp/release.tar.gz" "$release_url"
    if [ -n "$release_sha256" ]; then
        echo "$release_sha256  $tmp/release.tar.gz" | sha256sum -c --quiet - || die "checksum mismatch for $release_url"
    fi
    mkdir "$tmp/release"
    tar -xzf "$tmp/release.tar.gz" -C "$tmp/release" --strip-components=1
    bin_dir="$tmp/release/bin"
fi
if [ -n "$bin_dir" ]; then
    for b in "${binaries[@]}"; do
        [ -x "$bin_dir/$b" ] || die "$bin_dir/$b is missing (cargo build --release --workspace --bins)"
        # Copy then rename: a running binary is replaced, not overwritten (no ETXTBSY).
        install -m 0755 "$bin_dir/$b" "$opt/bin/.$b.new"
        mv -f "$opt/bin/.$b.new" "$opt/bin/$b"
    done
    log "installed ${binaries[*]} into $opt/bin"
fi
for b in "${binaries[@]}"; do
    [ -x "$opt/bin/$b" ] || die "no $b binary: pass --bin-dir DIR or --release-url URL"
done
# Keep the deployment files next to the binaries, so the machine can re-provision itself.
if [ "$src_root" != "$opt/share" ]; then
    rm -rf "$opt/share/deploy.new" "$opt/share/broker-config.new"
    cp -r "$src_root/deploy" "$opt/share/deploy.new"
    cp -r "$src_root/broker-config" "$opt/share/broker-config.new"
    rm -rf "$opt/share/deploy" "$opt/share/broker-config"
    mv "$opt/share/deploy.new" "$opt/share/deploy"
    mv "$opt/share/broker-config.new" "$opt/share/broker-config"
fi

# ---------------------------------------------------------------- secrets and environment files
gen_secret() { # file: create once, 0600
    if [ ! -s "$1" ]; then
        (umask 077; set +o pipefail; tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32 >"$1")
        log "generated $1"
    fi
    chmod 0600 "$1"
}
write_env() { # file, then lines on stdin; root-only because it holds the AMQP password
    (umask 077; cat >"$1.new")
    chmod 0600 "$1.new"
    mv -f "$1.new" "$1"
}

worker_extra=""
if [ "$role" = all ]; then
    for r in baas worker monitor; do gen_secret "$secrets/rabbitmq-$r.password"; done
    url_for() { echo "amqp://$user_prefix-$1:$(cat "$secrets/rabbitmq-$1.password")@$amqp_host/$vhost"; }
    write_env "$etc/baas.env" <<EOF
# baas: written by provision.sh (re-run it to change); see baas --help
AMQP_URL=$(url_for baas)
BAAS_ADDR=$baas_addr
BENCHOP_DATA_DIR=$data
RUST_LOG=baas=info,tower_http=warn
EOF
    write_env "$etc/monitor.env" <<EOF
# monitor: written by provision.sh; see monitor --help
AMQP_URL=$(url_for monitor)
MONITOR_ADDR=$monitor_addr
MONITOR_DB=$data/monitor.db
RUST_LOG=monitor=info
EOF
    worker_url="$(url_for worker)"
else
    if [ -z "$amqp_url" ] && [ -n "${AMQP_URL:-}" ]; then amqp_url="$AMQP_URL"; fi
    if [ -z "$amqp_url" ] && [ -r "$etc/worker.env" ]; then
        amqp_url="$(sed -n 's/^AMQP_URL=//p' "$etc/worker.env" | head -n 1)"
    fi
    [ -n "$amqp_url" ] || die "role worker needs --amqp-url amqps://benchop-worker:PASSWORD@BROKER:5671/benchop?cacertfile=/etc/benchop/broker-ca.pem (or AMQP_URL)"
    if [[ "$amqp_url" == *cacertfile=* ]]; then
        ca_file="${amqp_url##*cacertfile=}"
        ca_file="${ca_file%%&*}"
        ca_file="${ca_file%%,*}"
        [ -r "$ca_file" ] || die "the broker CA $ca_file (cacertfile in AMQP_URL) is missing: copy /etc/benchop/broker-ca.pem from the broker VM"
        grep -qx -- '-----BEGIN CERTIFICATE-----' "$ca_file" \
            || die "$ca_file holds no certificate: paste the broker VM's /etc/benchop/broker-ca.pem into it"
    fi
    worker_url="$amqp_url"
fi
[ -r "$etc/worker.env" ] && worker_extra="$(grep -E '^(WORKER_CONCURRENCY|WORKER_DRAIN_SECS)=' "$etc/worker.env" || true)"
write_env "$etc/worker.env" <<EOF
# worker: written by provision.sh; see worker --help. WORKER_NAME is set per instance.
AMQP_URL=$worker_url
RUST_LOG=worker=info
${worker_extra}
EOF

# ---------------------------------------------------------------- broker
if [ "$role" = all ]; then
    install -d -m 0755 "$root/etc/rabbitmq"
    cp "$src_root/broker-config/rabbitmq.conf" "$tmp/rabbitmq.conf"
    cp "$src_root/broker-config/enabled_plugins" "$tmp/enabled_plugins"
    if [ $tls = 1 ]; then
        tls_dir="$root/etc/rabbitmq/tls"
        install -d -m 0755 "$tls_dir"
        if [ ! -s "$tls_dir/server.pem" ]; then
            command -v openssl >/dev/null || die "openssl is needed to make the broker's TLS certificate (apt-get install openssl), or pass --no-tls"
            names="DNS:localhost,IP:127.0.0.1"
            for n in $(hostname) $(hostname -f 2>/dev/null || true) $(hostname -I 2>/dev/null || true) ${tls_names//,/ }; do
                if [[ "$n" =~ ^[0-9.]+$ || "$n" == *:* ]]; then names+=",IP:$n"; else names+=",DNS:$n"; fi
            done
            if [ ! -s "$secrets/broker-ca-key.pem" ] || [ ! -s "$etc/broker-ca.pem" ]; then
                (umask 077; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
                    -subj "/CN=benchop broker CA $(hostname)" -keyout "$secrets/broker-ca-key.pem" -out "$etc/broker-ca.pem" \
                    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null)
                log "generated the broker CA $etc/broker-ca.pem"
            fi
            (umask 077; openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$(hostname)" \
                -keyout "$tls_dir/server-key.pem" -out "$tmp/server.csr" 2>/dev/null)
            printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n' \
                "$names" >"$tmp/server.ext"
            openssl x509 -req -in "$tmp/server.csr" -CA "$etc/broker-ca.pem" -CAkey "$secrets/broker-ca-key.pem" \
                -CAcreateserial -CAserial "$tmp/ca.srl" -days 825 -extfile "$tmp/server.ext" -out "$tls_dir/server.pem" 2>/dev/null
            log "generated the broker certificate $tls_dir/server.pem for $names"
        fi
        [ -s "$etc/broker-ca.pem" ] || die "TLS: $etc/broker-ca.pem (the CA workers trust) is missing"
        install -m 0644 "$etc/broker-ca.pem" "$tls_dir/ca.pem"
        chmod 0644 "$etc/broker-ca.pem" "$tls_dir/server.pem"
        chmod 0640 "$tls_dir/server-key.pem"
        if id -u rabbitmq >/dev/null 2>&1; then chgrp rabbitmq "$tls_dir/server-key.pem"; fi
        cat >>"$tmp/rabbitmq.conf" <<EOF

## Added by deploy/provision.sh: AMQP over TLS for workers on other machines (they verify the broker
## against $etc/broker-ca.pem); the local services keep plain AMQP on loopback.
listeners.ssl.default = $tls_port
ssl_options.cacertfile = $tls_dir/ca.pem
ssl_options.certfile = $tls_dir/server.pem
ssl_options.keyfile = $tls_dir/server-key.pem
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
EOF
        log "workers on other machines join with AMQP_URL=amqps://$user_prefix-worker:PASSWORD@$(hostname -f 2>/dev/null || hostname):$tls_port/$vhost?cacertfile=/etc/benchop/broker-ca.pem (copy $etc/broker-ca.pem there)"
    fi
    changed=0
    for f in rabbitmq.conf enabled_plugins; do
        if ! cmp -s "$tmp/$f" "$root/etc/rabbitmq/$f"; then
            install -m 0644 "$tmp/$f" "$root/etc/rabbitmq/$f"
            changed=1
        fi
    done
    if [ $real_root = 1 ] && [ $systemd = 1 ]; then
        systemctl enable rabbitmq-server >/dev/null 2>&1 || true
        if [ $changed = 1 ]; then
            log "broker configuration changed: restarting rabbitmq-server"
            systemctl restart rabbitmq-server
        else
            systemctl start rabbitmq-server
        fi
    fi
    # With --prefix (tests) the running broker keeps its own configuration; only the definitions apply.
    "$src_root/deploy/broker-setup.sh" --definitions "$src_root/broker-config/definitions.json" \
        --vhost "$vhost" --user-prefix "$user_prefix" --secrets-dir "$secrets"
fi

# ---------------------------------------------------------------- firewall
if [ $firewall = 1 ]; then
    port_of() { echo "${1##*:}"; }
    http_ports="$(port_of "$baas_addr"), $(port_of "$monitor_addr")"
    rules() { # ports, cidrs
        local c
        for c in ${2//,/ }; do
            if [[ "$c" == *:* ]]; then
                echo "        ip6 saddr $c tcp dport { $1 } accept"
            else
                echo "        ip saddr $c tcp dport { $1 } accept"
            fi
        done
    }
    {
        echo "#!/usr/sbin/nft -f"
        echo "# Written by benchop's deploy/provision.sh: SSH, the benchop HTTP ports and (optionally) AMQP in;"
        echo "# everything else, including RabbitMQ's management (15672), Erlang distribution (25672) and epmd"
        echo "# (4369), is dropped."
        echo "flush ruleset"
        echo "table inet benchop_filter {"
        echo "    chain input {"
        echo "        type filter hook input priority 0; policy drop;"
        echo "        ct state established,related accept"
        echo "        ct state invalid drop"
        echo "        iif \"lo\" accept"
        echo "        meta l4proto { icmp, ipv6-icmp } accept"
        echo "        tcp dport 22 accept"
        [ "$role" = all ] && rules "$http_ports" "$http_allow"
        if [ "$role" = all ] && [ $tls = 1 ]; then rules "$tls_port" "$amqp_allow"; fi
        if [ "$role" = all ] && [ $tls = 0 ]; then rules 5672 "$amqp_allow"; fi
        echo "    }"
        echo "    chain forward {"
        echo "        type filter hook forward priority 0; policy drop;"
        echo "    }"
        echo "    chain output {"
        echo "        type filter hook output priority 0; policy accept;"
        echo "    }"
        echo "}"
    } >"$tmp/nftables.conf"
    install -m 0644 "$tmp/nftables.conf" "$root/etc/nftables.conf"
    if [ $real_root = 1 ]; then
        nft -c -f /etc/nftables.conf || die "/etc/nftables.conf does not parse"
        systemctl enable nftables >/dev/null 2>&1 || true
        nft -f /etc/nftables.conf
        log "firewall loaded from /etc/nftables.conf"
    fi
fi

# ---------------------------------------------------------------- services
render_unit() { # template name → $units/name
    install -d -m 0755 "$units"
    sed -e "s|@PREFIX@|$root|g" -e "s|@USER@|${service_user:-root}|g" \
        "$src_root/deploy/systemd/$1" >"$tmp/$1"
    install -m 0644 "$tmp/$1" "$units/$1"
}
render_unit benchop-worker@.service
[ "$role" = all ] && render_unit benchop-baas.service && render_unit benchop-monitor.service

host="$(hostname -s 2>/dev/null || echo localhost)"
if [ $systemd = 1 ]; then
    [ $real_root = 1 ] || die "systemd units can only be started with --prefix /; use --no-systemd"
    systemctl daemon-reload
    if [ "$role" = all ]; then
        systemctl enable benchop-baas.service benchop-monitor.service
        systemctl restart benchop-baas.service benchop-monitor.service
    fi
    for i in $(seq 1 "$workers"); do
        systemctl enable "benchop-worker@$i.service"
        systemctl restart "benchop-worker@$i.service"
    done
    # Fewer workers than last time: stop the extra instances.
    for unit in $(systemctl list-units --all --plain --no-legend 'benchop-worker@*.service' | awk '{print $1}'); do
        i="${unit#benchop-worker@}"; i="${i%.service}"
        if ! [[ "$i" =~ ^[0-9]+$ ]] || [ "$i" -gt "$workers" ]; then
            systemctl disable --now "$unit"
        fi
    done
    log "services running: systemctl status 'benchop-*'"
else
    stop_direct
    if [ "$role" = all ]; then
        start_direct baas baas "$etc/baas.env"
        start_direct monitor monitor "$etc/monitor.env"
    fi
    for i in $(seq 1 "$workers"); do
        start_direct "worker-$i" worker "$etc/worker.env" "WORKER_NAME=worker-$i@$host"
    done
    log "processes running; stop them with: $0 --prefix $prefix --stop"
fi
