#!/usr/bin/env bash
# Installs Debian's openssl command when it is missing: the TLS tests make their CA and node
# certificates with it at run time. Exits 0 when present.
set -euo pipefail
if command -v openssl >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != "0" ]; then echo "install-openssl: openssl is missing and this is not root; install Debian's openssl" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends openssl >/dev/null
command -v openssl
