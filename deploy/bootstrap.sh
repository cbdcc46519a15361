#!/bin/bash
# benchop-bootstrap: download a benchop release and run its deploy/provision.sh. cloud-init installs this
# file as /usr/local/sbin/benchop-bootstrap (an exact copy of deploy/bootstrap.sh, checked by the tests)
# and runs it once; run it again by hand to upgrade or to re-apply the settings.
#
#   benchop-bootstrap [CONF]     (default /etc/benchop/bootstrap.conf)
#
# CONF is a shell fragment: BENCHOP_RELEASE_URL (required; https://… or file://…), BENCHOP_RELEASE_SHA256,
# BENCHOP_ROLE (all | worker), BENCHOP_RELEASE_DIR (default /opt/benchop/release), and
# BENCHOP_PROVISION_ARGS (more provision.sh flags, e.g. "--workers 2 --firewall").
# A worker's AMQP_URL (with its password) belongs in /etc/benchop/worker.env or in CONF as AMQP_URL.
set -euo pipefail
conf="${1:-/etc/benchop/bootstrap.conf}"
[ -r "$conf" ] || { echo "benchop-bootstrap: cannot read $conf" >&2; exit 1; }
set -a
# shellcheck disable=SC1090
. "$conf"
set +a
: "${BENCHOP_RELEASE_URL:?set BENCHOP_RELEASE_URL in $conf (a tarball made by deploy/package.sh)}"
role="${BENCHOP_ROLE:-all}"
dir="${BENCHOP_RELEASE_DIR:-/opt/benchop/release}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "benchop-bootstrap: downloading $BENCHOP_RELEASE_URL" >&2
curl -fsSL --retry 10 --retry-delay 3 --retry-connrefused -o "$tmp/benchop.tar.gz" "$BENCHOP_RELEASE_URL"
if [ -n "${BENCHOP_RELEASE_SHA256:-}" ]; then
    echo "$BENCHOP_RELEASE_SHA256  $tmp/benchop.tar.gz" | sha256sum -c --quiet -
fi
mkdir -p "$tmp/x"
tar -xzf "$tmp/benchop.tar.gz" -C "$tmp/x"
rm -rf "$dir.new"
mkdir -p "$(dirname "$dir")"
mv "$tmp/x/benchop" "$dir.new"
rm -rf "$dir"
mv "$dir.new" "$dir"
# shellcheck disable=SC2086 # BENCHOP_PROVISION_ARGS is a list of flags
exec "$dir/deploy/provision.sh" --role "$role" --bin-dir "$dir/bin" ${BENCHOP_PROVISION_ARGS:-}
