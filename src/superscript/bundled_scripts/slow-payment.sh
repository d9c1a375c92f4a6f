#!/usr/bin/env bash
# superscript.description: Hangs past its 2 s timeout with a background child (example of a timeout kill)
# superscript.timeout: 2
# superscript.max_attempts: 1
#
# Writes its background child's PID to slow-child.pid and its own to slow.pid under
# SUPERSCRIPT_DATA_DIR, so tests can check that the timeout kills the whole group.
set -euo pipefail

data_dir=${SUPERSCRIPT_DATA_DIR:-.superscript}
mkdir -p "$data_dir"
sleep 300 &
# Write then rename, so a reader never sees a half-written PID.
printf '%s\n' "$!" >"$data_dir/slow-child.pid.tmp"
mv -f "$data_dir/slow-child.pid.tmp" "$data_dir/slow-child.pid"
printf '%s\n' "$$" >"$data_dir/slow.pid.tmp"
mv -f "$data_dir/slow.pid.tmp" "$data_dir/slow.pid"
sleep 300
