#!/bin/sh
# Installs what building and testing agentwatch needs on Debian/Ubuntu, only what is missing.
#   libbpf-dev, libelf-dev, zlib1g-dev: the libbpf the daemon links against, and that the
#     BPF skeleton generator (bpf/tools/bpf-skeleton.c, built by bpf/build.sh) uses
#   bpftool: generates vmlinux.h from the kernel's BTF and links the BPF object at build time
#   libdeflate-dev: gzip of rotated record files (zlib reads them back)
#   pkg-config: lets SwiftPM find libbpf, OpenSSL, zlib and libdeflate
#   libssl-dev: TLS for the syslog sink
#   rsyslog, rsyslog-openssl, openssl: the tests ship records to a real rsyslog over UDP, TCP,
#     TLS (with certificates made by openssl) and a unix socket
#   chromium: a test renders `agentwatch replay --format html` headless and checks the page
#   python3-jsonschema (or pip's jsonschema): the tests validate records against the schema
#   prometheus-client (pip, or python3-prometheus-client): the metrics test parses the textfile
# The Swift toolchain (with its clang, which compiles the BPF programs) must already be on PATH.
set -eu

need=""
for pkg in libbpf-dev libelf-dev zlib1g-dev libdeflate-dev bpftool pkg-config gcc libc6-dev libssl-dev openssl rsyslog rsyslog-openssl chromium; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need="$need $pkg"
done
if [ -n "$need" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: missing packages:$need; run as root (sudo) to install them" >&2
		exit 1
	fi
	echo "install-deps: installing$need"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq $need >/dev/null
fi

if ! python3 -c 'import jsonschema' 2>/dev/null; then
	echo "install-deps: installing jsonschema for the schema tests"
	python3 -m pip install -q jsonschema 2>/dev/null || apt-get install -y -qq python3-jsonschema >/dev/null
fi

if ! python3 -c 'import prometheus_client' 2>/dev/null; then
	echo "install-deps: installing prometheus-client for the metrics test (its text-format parser)"
	python3 -m pip install -q prometheus-client 2>/dev/null || apt-get install -y -qq python3-prometheus-client >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
	echo "install-deps: swift is not on PATH: install the Swift toolchain (6.1 or later) first" >&2
	exit 1
fi
