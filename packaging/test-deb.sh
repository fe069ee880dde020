#!/usr/bin/env bash
# Tests the Debian package: lintian, then install, check, remove and purge it on this machine.
#   packaging/test-deb.sh [PACKAGE.deb]      (as root; without a package, builds one first)
# Installs what it needs with apt-get (lintian, dpkg-dev, man-db, ...), so it runs on a fresh
# Debian 12 machine (CI). It leaves the machine as it found it: the package is purged at the end,
# whatever happens, and the agentwatch group and /var/log/agentwatch go again when this test
# made them. It refuses to start where agentwatch is installed already.
#
# Lintian: any error fails the test, and so does any warning not accepted below.
#   initial-upload-closes-no-bugs  the package is not uploaded to Debian, so there is no
#                                  ITP bug for its first changelog entry to close
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
accepted_warnings="initial-upload-closes-no-bugs"
failures=0
pass() { echo "test-deb: ok: $*"; }
fail() { echo "test-deb: FAIL: $*" >&2; failures=$((failures + 1)); }
die() { echo "test-deb: $*" >&2; exit 1; }
check() { # check DESCRIPTION COMMAND...
	local what=$1; shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}

[ "$(id -u)" -eq 0 ] || die "run as root: it installs and purges the package"

# 1. Tools.
need=""
for pkg in lintian dpkg-dev binutils man-db systemd adduser init-system-helpers; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need="$need $pkg"
done
apt_install() {
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 "$@" >/dev/null
}
if [ -n "$need" ]; then
	echo "test-deb: installing$need"
	apt-get update -qq -o DPkg::Lock::Timeout=300
	# shellcheck disable=SC2086
	apt_install $need
fi

# 2. The package.
if [ $# -ge 1 ]; then
	deb=$(realpath "$1")
else
	deb=$("$here/build-deb.sh" | tail -n 1)
fi
[ -f "$deb" ] || die "no package at $deb"
echo "test-deb: testing $deb"

# 3. Lintian.
lint=$(mktemp)
trap 'rm -f "$lint"' EXIT
lintian --pedantic --display-info --show-overrides "$deb" > "$lint" 2>&1 || true
grep -v '^running with root privileges' "$lint" || true
if grep -q '^E: ' "$lint"; then
	fail "lintian: errors (E:) above"
else
	pass "lintian: no errors"
fi
unexpected=$(grep '^W: ' "$lint" | awk '{ print $3 }' | grep -vxF -f <(tr ' ' '\n' <<<"$accepted_warnings") || true)
if [ -n "$unexpected" ]; then
	fail "lintian: warnings not accepted in $0: $(echo "$unexpected" | tr '\n' ' ')"
else
	pass "lintian: only accepted warnings ($(grep -c '^W: ' "$lint" || true))"
fi

# 4. Install, on a machine without agentwatch.
if dpkg-query -W -f='${Status}' agentwatch 2>/dev/null | grep -qv "not-installed"; then
	die "agentwatch is installed here already (dpkg -l agentwatch): not touching it"
fi
[ -e /etc/agentwatch ] && die "/etc/agentwatch exists without the package: not touching it"
has_group() { getent group agentwatch >/dev/null; }
had_group=0; has_group && had_group=1
had_logs=0; [ -e /var/log/agentwatch ] && had_logs=1
cleanup() {
	rm -f "$lint"
	if dpkg-query -W -f='${Status}' agentwatch 2>/dev/null | grep -qv "not-installed"; then
		dpkg --purge agentwatch >/dev/null 2>&1 || echo "test-deb: could not purge agentwatch: dpkg --purge agentwatch" >&2
	fi
	if [ "$had_group" = 0 ] && has_group; then groupdel agentwatch; fi
	if [ "$had_logs" = 0 ]; then rm -rf /var/log/agentwatch; fi
}
trap cleanup EXIT

# Depends first (from the package itself), then dpkg -i as the task says.
deps=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -E 's/\(.*\)//; s/ //g' | grep -v '^$')
missing=""
for d in $deps; do
	dpkg-query -W -f='${Status}' "$d" 2>/dev/null | grep -q "install ok installed" || missing="$missing $d"
done
if [ -n "$missing" ]; then
	echo "test-deb: installing the package's dependencies:$missing"
	apt-get update -qq -o DPkg::Lock::Timeout=300
	# shellcheck disable=SC2086
	apt_install $missing
fi
dpkg_do() { # dpkg, waiting for a lock another apt or dpkg holds
	local out
	for _ in $(seq 60); do
		if out=$(dpkg "$@" 2>&1); then echo "$out"; return 0; fi
		case $out in *"lock"*) sleep 5 ;; *) echo "$out" >&2; return 1 ;; esac
	done
	echo "$out" >&2
	return 1
}
check "dpkg -i" dpkg_do -i "$deb"
version=$(dpkg-deb -f "$deb" Version)
check "installed, version $version" test "$(dpkg-query -W -f='${Status} ${Version}' agentwatch)" = "install ok installed $version"
check "agentwatch --version is ${version%-*}" test "$(/usr/bin/agentwatch --version)" = "${version%-*}"
check "the agentwatch group exists" has_group
wants=/etc/systemd/system/multi-user.target.wants/agentwatch.service
check "the unit is enabled ($wants)" test "$(readlink "$wants")" = /lib/systemd/system/agentwatch.service
check "systemctl is-enabled agentwatch" test "$(systemctl is-enabled agentwatch 2>&1)" = enabled
check "/etc/agentwatch/agentwatch.yaml is a conffile" \
	grep -q '^ /etc/agentwatch/agentwatch.yaml [0-9a-f]' <(dpkg-query -W -f='${Conffiles}\n' agentwatch)
out=$(/usr/bin/agentwatch daemon --check-config 2>&1) || true
echo "$out" | sed 's/^/    /'
check "agentwatch daemon --check-config passes with the installed config" \
	grep -q '^config OK: /etc/agentwatch/agentwatch.yaml' <<<"$out"
check "the installed rules load (check-config)" grep -qE '^rules: [0-9]+ rules enabled from /usr/share/agentwatch/rules' <<<"$out"
check "agentwatch rules check passes on the installed rules" /usr/bin/agentwatch rules check /usr/share/agentwatch/rules
verify=$(systemd-analyze verify /lib/systemd/system/agentwatch.service 2>&1) && verify_rc=0 || verify_rc=$?
[ -n "$verify" ] && echo "$verify" | sed 's/^/    /'
check "systemd-analyze verify passes, silently" test "$verify_rc" = 0 -a -z "$verify"
check "man agentwatch finds the page" test "$(man -w agentwatch 2>/dev/null)" = /usr/share/man/man8/agentwatch.8.gz
check "the man page renders without warnings" \
	test -z "$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z /usr/share/man/man8/agentwatch.8.gz 2>&1 >/dev/null)"

# 5. Upgrade (the same package again): a changed config and a disabled unit stay as the admin
# left them.
echo "# changed by test-deb.sh" >> /etc/agentwatch/agentwatch.yaml
systemctl disable agentwatch >/dev/null 2>&1
check "dpkg -i again (upgrade)" dpkg_do --force-confold -i "$deb"
check "upgrade: the changed config is kept" grep -q "^# changed by test-deb.sh" /etc/agentwatch/agentwatch.yaml
check "upgrade: the disabled unit stays disabled" test ! -e "$wants"
systemctl enable agentwatch >/dev/null 2>&1

# 6. Remove: the program goes, the configuration and the enablement stay, the unit is masked
# until purge (as deb-systemd-helper does for every Debian service).
if [ "$had_logs" = 0 ]; then
	# Records, as a running daemon would have left them: they must outlive the purge.
	install -d -m 0755 /var/log/agentwatch
	echo '{}' > /var/log/agentwatch/events.ndjson
fi
check "dpkg -r" dpkg_do -r agentwatch
check "removed: /usr/bin/agentwatch, the unit, the rules, the man page" \
	test ! -e /usr/bin/agentwatch -a ! -e /lib/systemd/system/agentwatch.service -a ! -e /usr/share/agentwatch \
	-a ! -e /usr/share/man/man8/agentwatch.8.gz
check "kept on remove: /etc/agentwatch/agentwatch.yaml" test -f /etc/agentwatch/agentwatch.yaml
check "masked on remove" test "$(readlink /etc/systemd/system/agentwatch.service)" = /dev/null
check "dpkg state config-files" test "$(dpkg-query -W -f='${Status}' agentwatch)" = "deinstall ok config-files"

# 7. Purge: the configuration and every systemd link go; the records and the group stay.
check "dpkg --purge" dpkg_do --purge agentwatch
check "purged: /etc/agentwatch" test ! -e /etc/agentwatch
check "purged: the enablement link, the mask, deb-systemd-helper's state" \
	test ! -L "$wants" -a ! -e /etc/systemd/system/agentwatch.service \
	-a ! -e /var/lib/systemd/deb-systemd-helper-enabled/agentwatch.service.dsh-also \
	-a ! -e /var/lib/systemd/deb-systemd-helper-masked/agentwatch.service
check "dpkg knows the package no more" test -z "$(dpkg-query -W -f='${Status}' agentwatch 2>/dev/null | grep -v not-installed)"
if [ "$had_logs" = 0 ]; then
	check "kept on purge: /var/log/agentwatch (audit records)" test -f /var/log/agentwatch/events.ndjson
fi
check "kept on purge: the agentwatch group" has_group

if [ "$failures" -gt 0 ]; then
	echo "test-deb: $failures checks failed" >&2
	exit 1
fi
echo "test-deb: all checks passed"
