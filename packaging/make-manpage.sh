#!/usr/bin/env bash
# Writes agentwatch.8 (mdoc) to standard output, made from the binary's own help texts:
#   packaging/make-manpage.sh BINARY [SOURCE_DATE_EPOCH]
# swift-argument-parser's generate-manual tool reads every subcommand's help from
# `BINARY --experimental-dump-help` (the same texts `--help` prints), so the page cannot drift
# from the commands. The tool is built here from the package's own checkout of
# swift-argument-parser (no network: the plugin form, `swift package generate-manual`, works
# too but rebuilds the whole package once more). The FILES and SEE ALSO sections, which no
# --help text holds, are added after it.
# Environment: SWIFT (default swift), SWIFT_BUILD_FLAGS (build-deb.sh's, so that its build is
# reused; default: -c release --static-swift-stdlib), GENERATE_MANUAL (an already built
# generate-manual).
set -euo pipefail

bin=${1:?usage: make-manpage.sh BINARY [SOURCE_DATE_EPOCH]}
epoch=${2:-${SOURCE_DATE_EPOCH:-$(date +%s)}}
root=$(cd "$(dirname "$0")/.." && pwd)
SWIFT=${SWIFT:-swift}

tool=${GENERATE_MANUAL:-}
if [ -z "$tool" ]; then
	flags=${SWIFT_BUILD_FLAGS:--c release --static-swift-stdlib}
	# shellcheck disable=SC2086
	(cd "$root" && "$SWIFT" build $flags --product generate-manual >&2)
	# shellcheck disable=SC2086
	tool=$(cd "$root" && "$SWIFT" build $flags --show-bin-path)/generate-manual
fi

page=$("$tool" "$bin" --section 8 --date "$(date -u -d "@$epoch" +%Y-%m-%d)" --output-directory -)
case $page in
*".Sh \"EXIT STATUS\""*) ;;
*) echo "make-manpage: generate-manual's output has no EXIT STATUS section; check its format" >&2; exit 1 ;;
esac

files='.Sh FILES
.Bl -tag -width Ds
.It Pa /etc/agentwatch/agentwatch.yaml
The daemon'"'"'s configuration: every setting with its built-in default. Check a change with
.Nm Cm daemon Fl -check-config ;
apply it with
.Ic systemctl reload agentwatch .
.It Pa /usr/share/agentwatch/rules/
The default detection rules, with their format in
.Pa README.md .
.It Pa /etc/agentwatch/rules.d/
Local rules, read after the default ones.
.It Pa /var/log/agentwatch/events.ndjson
The records (NDJSON, hash-chained; check with
.Nm Cm verify ) .
.It Pa /run/agentwatch/control.sock
The control socket: root and members of the
.Em agentwatch
group start sessions, list them and read counters through it.
.It Pa /lib/systemd/system/agentwatch.service
The systemd unit. Why it keeps each capability it keeps:
.Pa /usr/share/doc/agentwatch/CAPABILITIES.md .
.El'
seealso='.Sh SEE ALSO
.Xr systemctl 1 ,
.Xr journalctl 1 ,
.Xr systemd.exec 5 ,
.Xr capabilities 7 ,
.Xr cgroups 7'

# FILES goes before EXIT STATUS (the mdoc section order), SEE ALSO at the end.
FILES=$files SEEALSO=$seealso awk '
	/^\.Sh "?EXIT STATUS"?$/ { print ENVIRON["FILES"] }
	{ print }
	END { print ENVIRON["SEEALSO"] }
' <<<"$page"
