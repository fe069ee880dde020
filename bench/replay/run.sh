#!/bin/sh
# Replay throughput and peak memory on a large capture.
#
#   bench/replay/run.sh [CAPTURE] [AGENTWATCH]
#
# CAPTURE defaults to /tmp/agentwatch-replay-bench.ndjson, made by gen_capture.py (1 GiB, from
# bench/replay/seed.ndjson when it exists, else its built-in session) if it is not there yet.
# AGENTWATCH defaults to the release build (swift build -c release). Each line: the replay's
# options, records/s (records in the capture / wall seconds), user and system CPU seconds, and
# peak RSS, as /usr/bin/time -v measures them. The capture is read once first so that every run
# reads it from the page cache.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
capture=${1:-/tmp/agentwatch-replay-bench.ndjson}
aw=${2:-$root/.build/release/agentwatch}
if [ ! -f "$capture" ]; then
    seed=""
    [ -f "$here/seed.ndjson" ] && seed="--from $here/seed.ndjson"
    python3 "$here/gen_capture.py" $seed --size 1G --out "$capture"
fi
records=$(wc -l < "$capture")
echo "capture: $capture, $(du -h "$capture" | cut -f1), $records records; $("$aw" --version 2>/dev/null || echo agentwatch)"
cat "$capture" > /dev/null
measure() {
    /usr/bin/time -v "$aw" "$@" "$capture" > /dev/null 2> /tmp/agentwatch-replay-bench.time || true
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' /tmp/agentwatch-replay-bench.time)
    user=$(sed -n 's/.*User time (seconds): //p' /tmp/agentwatch-replay-bench.time)
    sys=$(sed -n 's/.*System time (seconds): //p' /tmp/agentwatch-replay-bench.time)
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' /tmp/agentwatch-replay-bench.time)
    secs=$(echo "$wall" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
    printf '%-44s %9.0f records/s  wall %6.2f s  user %6.2f s  sys %5.2f s  peak RSS %4d MiB\n' \
        "$*" "$(echo "$records $secs" | awk '{ print $1 / $2 }')" "$secs" "$user" "$sys" "$((rss / 1024))"
}
measure verify
measure replay --format ndjson
measure replay --format timeline
measure replay --format tree
measure replay --format html
measure replay --format ndjson --rules "$root/rules"
measure replay --format tree --rules "$root/rules"
