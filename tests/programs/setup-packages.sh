#!/usr/bin/env bash
# The Debian packages the tests need that a fresh machine may lack (`make setup` runs this).
#
# Idempotent and quiet: installs only what is missing and says what. The programs tier runs
# squid, nginx, PostgreSQL 15 and Redis itself (tests/programs), so the services these packages
# start on their own are kept from starting (policy-rc.d) and disabled: nothing of theirs stays
# listening on the default ports. sudo is used only when not root.
set -euo pipefail

packages=(
  squid          # the SSRF proxy
  nginx          # the front proxy
  postgresql-15  # the bundled database (and its client programs)
  redis-server   # the bundled Redis (redis-server, redis-cli)
  util-linux     # setpriv, unshare, nsenter: user, capabilities and namespaces of a container
  iproute2       # ip: the tier's pod network (bridge, veth pairs)
)
# Services the packages above would start at installation.
services=(squid nginx postgresql redis-server)

installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "[setup] missing Debian packages ${missing[*]} and no apt-get to install them" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "[setup] installing ${missing[*]} needs root or sudo" >&2; exit 1; }
  sudo=(sudo)
fi
echo "[setup] installing Debian packages: ${missing[*]}"

# Keep the packages' services from starting during the installation (Debian's policy-rc.d
# interface: exit 101 = action forbidden). An existing policy is left as it is.
policy=/usr/sbin/policy-rc.d
own_policy=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# dify_ce.kubernetes tests: no service starts during package installation\nexit 101\n' |
    "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod 0755 "$policy"
  own_policy=true
fi
cleanup() { if $own_policy; then "${sudo[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT

apt_install() {
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
    >/dev/null 2>&1
}
# The package lists may be missing or stale on a fresh machine: update once, then retry.
if ! apt_install; then
  "${sudo[@]}" apt-get update -q >/dev/null
  if ! apt_install; then
    echo "[setup] apt-get install ${missing[*]} failed:" >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
    exit 1
  fi
fi

# Disable (and stop, should one have started anyway) the services of what was just installed;
# services a machine already had are none of this script's business.
just_installed=" ${missing[*]} "
for s in "${services[@]}"; do
  case "$s" in
    postgresql) pkg=postgresql-15 ;;
    *) pkg=$s ;;
  esac
  [[ $just_installed == *" $pkg "* ]] || continue
  if [ -d /run/systemd/system ]; then
    "${sudo[@]}" systemctl disable --now --quiet "$s" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$s" ]; then
    "${sudo[@]}" "/etc/init.d/$s" stop >/dev/null 2>&1 || true
    "${sudo[@]}" update-rc.d "$s" disable >/dev/null 2>&1 || true
  fi
done
echo "[setup] installed: ${missing[*]} (their services disabled)"
