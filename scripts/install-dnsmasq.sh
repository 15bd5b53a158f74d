#!/usr/bin/env bash
# Installs dnsmasq from Debian's packages when it is missing (the discovery tests serve A and SRV
# records from it on a loopback port). dnsmasq-base: the binary alone, no system service started.
set -euo pipefail
if command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ]; then exit 0; fi
if [ "$(id -u)" != "0" ]; then echo "install-dnsmasq: dnsmasq is missing and this is not root; install Debian's dnsmasq-base" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq dnsmasq-base >/dev/null
command -v dnsmasq || ls /usr/sbin/dnsmasq
