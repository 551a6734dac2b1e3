#!/usr/bin/env bash
# Installs what building, testing and the demo need, from Debian's packages.
# Runs apt-get only when something is missing, so it is cheap to call again.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  liblua5.4-dev libyaml-cpp-dev libcli11-dev catch2 libsqlite3-dev nlohmann-json3-dev
  libpq-dev libssh-dev libssl-dev libpg-query-dev
  postgresql-15 postgresql-contrib postgresql-client-15 locales
  openssh-server openssh-client kubectl python3 sqlite3 debootstrap
  file man-db groff-base dpkg-dev chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing packages: ${missing[*]}; run as root (or install them) first" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
