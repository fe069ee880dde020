#!/usr/bin/env bash
# Builds the agentwatch Debian package from this source tree with dpkg-deb (no debhelper):
#   packaging/build-deb.sh [OUTDIR]      (default OUTDIR: .build-deb)
# prints the path of agentwatch_<version>-<revision>_<arch>.deb on its last line.
#
# The binary is built in release mode with the Swift runtime and Foundation linked statically,
# so the package needs only Debian's own libraries (Depends computed by dpkg-shlibdeps from the
# binary). The BPF programs are embedded in the binary. It is built with the hardening Debian
# builds use (C code with _FORTIFY_SOURCE=2, full RELRO, bind-now) in a build folder of its own,
# .build-deb, so that `make build` and this do not rebuild each other's objects.
#
# Environment:
#   SWIFT            the swift driver (default: swift)
#   SCRATCH          the build folder (default: .build-deb)
#   DEB_REVISION     the Debian revision (default: 1): version = `agentwatch --version`-REVISION
#   DEB_MAINTAINER   the Maintainer field
#   AGENTWATCH_BIN   package this already built binary instead of building one (must be a
#                    release build with --static-swift-stdlib; checked with objdump)
#   SOURCE_DATE_EPOCH  timestamps in the package (default: the last commit's time), so two
#                    builds of one commit give the same files
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"
outdir=$(mkdir -p "${1:-.build-deb}" && cd "${1:-.build-deb}" && pwd)
SWIFT=${SWIFT:-swift}
scratch=${SCRATCH:-$root/.build-deb}
# Make-manpage builds generate-manual with the same flags, in the same folder.
export SWIFT_BUILD_FLAGS="-c release --static-swift-stdlib --scratch-path $scratch -Xcc -D_FORTIFY_SOURCE=2 -Xlinker -z -Xlinker relro -Xlinker -z -Xlinker now"
revision=${DEB_REVISION:-1}
maintainer=${DEB_MAINTAINER:-agentwatch maintainers <maintainers@users.noreply.r-seed-53c1923d.example>}
say() { echo "build-deb: $*" >&2; }
die() { echo "build-deb: $*" >&2; exit 1; }

for tool in dpkg-deb dpkg-shlibdeps objdump gzip; do
	command -v "$tool" >/dev/null || die "$tool is missing: apt-get install dpkg-dev binutils"
done
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

# 1. The binary.
if [ -n "${AGENTWATCH_BIN:-}" ]; then
	bin=$AGENTWATCH_BIN
else
	say "building the release binary (swift build $SWIFT_BUILD_FLAGS)"
	# shellcheck disable=SC2086
	"$SWIFT" build $SWIFT_BUILD_FLAGS --product agentwatch >&2
	# shellcheck disable=SC2086
	bin=$("$SWIFT" build $SWIFT_BUILD_FLAGS --show-bin-path)/agentwatch
fi
[ -x "$bin" ] || die "no binary at $bin"

# Only Debian's libraries may be needed: a Swift runtime library here means the build was not
# static and the package would not run where no toolchain is installed.
needed=$(objdump -p "$bin" | awk '$1 == "NEEDED" { print $2 }')
if echo "$needed" | grep -qE '^lib(swift|Foundation|_Foundation|dispatch|BlocksRuntime|icu)'; then
	die "$bin needs Swift toolchain libraries ($(echo "$needed" | grep -E '^lib(swift|Foundation|_Foundation|dispatch|BlocksRuntime|icu)' | tr '\n' ' ')): build it with --static-swift-stdlib"
fi
if ldd "$bin" | grep -q 'not found'; then
	die "$bin needs libraries this machine lacks: $(ldd "$bin" | grep 'not found' | tr -s ' \n' ' ')"
fi

version=$("$bin" --version)
[[ $version =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || die "agentwatch --version printed '$version', not a version"
debversion="$version-$revision"
arch=$(dpkg --print-architecture)
deb="$outdir/agentwatch_${debversion}_${arch}.deb"
say "agentwatch $debversion ($arch)"

# 2. The tree, as it is installed.
stage=$(mktemp -d "${TMPDIR:-/tmp}/agentwatch-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
pkg=$stage/pkg
install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/usr/share/agentwatch/rules" \
	"$pkg/etc/agentwatch/rules.d" "$pkg/lib/systemd/system" "$pkg/usr/share/man/man8" \
	"$pkg/usr/share/doc/agentwatch"
# Stripped of symbols only: Swift's reflection metadata lives in allocated sections and stays.
strip --strip-unneeded --remove-section=.comment --remove-section=.note -o "$pkg/usr/bin/agentwatch" "$bin"
chmod 0755 "$pkg/usr/bin/agentwatch"
install -m 0644 rules/*.yaml rules/README.md "$pkg/usr/share/agentwatch/rules/"
install -m 0644 packaging/agentwatch.yaml "$pkg/etc/agentwatch/agentwatch.yaml"
install -m 0644 packaging/agentwatch.service "$pkg/lib/systemd/system/agentwatch.service"
"$here/make-manpage.sh" "$pkg/usr/bin/agentwatch" "$SOURCE_DATE_EPOCH" > "$stage/agentwatch.8"
gzip -9n < "$stage/agentwatch.8" > "$pkg/usr/share/man/man8/agentwatch.8.gz"
install -m 0644 packaging/deb/copyright "$pkg/usr/share/doc/agentwatch/copyright"
install -m 0644 packaging/CAPABILITIES.md "$pkg/usr/share/doc/agentwatch/CAPABILITIES.md"
install -d -m 0755 "$pkg/usr/share/lintian/overrides"
install -m 0644 packaging/deb/lintian-overrides "$pkg/usr/share/lintian/overrides/agentwatch"
{
	echo "agentwatch ($debversion) unstable; urgency=medium"
	echo
	echo "  * Built from $(git -C "$root" describe --always --dirty 2>/dev/null || echo 'a source tree outside git')."
	echo "  * The project's history is its git log; there is no other changelog yet."
	echo
	echo " -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n > "$pkg/usr/share/doc/agentwatch/changelog.Debian.gz"
chmod 0644 "$pkg/usr/share/doc/agentwatch/changelog.Debian.gz"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$pkg/DEBIAN/"
echo /etc/agentwatch/agentwatch.yaml > "$pkg/DEBIAN/conffiles"
chmod 0644 "$pkg/DEBIAN/conffiles"

# 3. Depends, from the libraries the binary links (dpkg-shlibdeps reads the installed packages'
# shlibs/symbols files), plus what the maintainer scripts run: addgroup (adduser).
# deb-systemd-helper comes with init-system-helpers, which is Essential.
mkdir -p "$stage/src/debian"
printf 'Source: agentwatch\n\nPackage: agentwatch\nArchitecture: any\n' > "$stage/src/debian/control"
shlibs=$(cd "$stage/src" && dpkg-shlibdeps -O -e"$pkg/usr/bin/agentwatch" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no dependencies for $bin"
installed_size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)

cat > "$pkg/DEBIAN/control" <<EOF
Package: agentwatch
Version: $debversion
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $shlibs, adduser
Section: admin
Priority: optional
Description: eBPF audit trail of AI agent sessions
 agentwatch records what autonomous AI agents do on a developer machine. An
 agent session (a coding agent and everything it starts) runs in its own
 cgroup; agentwatch records every program it executes, every file it opens and
 every connection it makes, tied to the session, as hash-chained NDJSON
 records, raises alerts when a detection rule matches (a read of an SSH key, a
 large upload, a reverse shell) and ships records and alerts to files or to a
 SIEM over syslog.
 .
 This package runs agentwatch as a systemd service (agentwatch.service) with a
 default configuration in /etc/agentwatch and the default rules in
 /usr/share/agentwatch/rules. Members of the agentwatch group may start
 watched sessions without root: agentwatch run -- COMMAND.
EOF

(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/control" "$pkg/DEBIAN/md5sums"
find "$pkg" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >&2
echo "$deb"
