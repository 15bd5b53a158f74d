#!/usr/bin/env bash
# Installs etcd 3.4 from Debian's packages when it is missing (for bench/http and the etcd tests).
set -euo pipefail
if command -v etcd >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != "0" ]; then echo "install-etcd: etcd is missing and this is not root; install Debian's etcd-server" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq etcd-server >/dev/null
# The package may start a system etcd on the default ports: the benchmarks run their own.
systemctl stop etcd >/dev/null 2>&1 || true
pkill -x etcd >/dev/null 2>&1 || true
command -v etcd
