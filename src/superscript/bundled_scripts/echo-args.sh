#!/usr/bin/env bash
# superscript.description: Print each argument on its own line, verbatim (shows that arguments never pass through a shell)
# superscript.timeout: 10
set -euo pipefail

if (($# > 0)); then
  printf '%s\n' "$@"
fi
