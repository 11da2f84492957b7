#!/usr/bin/env bash
# Installs the Debian packages Alyx builds and tests with, if missing.
# Safe to run again: it only calls apt-get when something is absent.
set -euo pipefail

PKGS=(meson ninja-build pkg-config gcc clang
      libsqlite3-dev sqlite3 libwebsockets-dev libwebsockets-evlib-ev
      libevent-dev libev-dev libcyaml-dev libyaml-dev libcjson-dev
      libjwt-dev libssl-dev libcurl4-openssl-dev libpcre2-dev
      libargon2-dev tzdata python3 python3-pytest bubblewrap
      podman runc)   # podman + runc: the container runner's real-engine tests

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
