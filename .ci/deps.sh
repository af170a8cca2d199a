#!/usr/bin/env bash
# Installs what the host tests need on a fresh Debian 12 machine (idempotent).
# With arguments COMMAND:PACKAGE ..., installs those instead (bench/compare.sh does).
set -euo pipefail
# A dpkg run cut short earlier (a killed install, a package whose set-up failed) makes
# every later apt-get install fail with "dpkg was interrupted": finish it first.
if [ "$(id -u)" = 0 ] && command -v dpkg >/dev/null && [ -n "$(dpkg --audit 2>/dev/null)" ]; then
  echo "ci: dpkg reports unfinished packages; running dpkg --configure -a"
  DEBIAN_FRONTEND=noninteractive dpkg --configure -a || echo "ci: dpkg --configure -a failed; installs may fail"
fi
need=()
pairs=("$@")
[ "$#" -gt 0 ] || pairs=(ip:iproute2 ping:iputils-ping setpriv:util-linux file:file gcc:gcc iperf3:iperf3 faketime:faketime socat:socat setcap:libcap2-bin)
for pair in "${pairs[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "ci: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Another apt/dpkg (unattended-upgrades, a parallel job) may hold the lock: wait for it
  # (up to 10 minutes) instead of failing.
  lock=(-o DPkg::Lock::Timeout=600)
  apt-get "${lock[@]}" update -qq
  apt-get "${lock[@]}" install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "ci: cargo is missing (install Rust with rustup)"; exit 1; }
