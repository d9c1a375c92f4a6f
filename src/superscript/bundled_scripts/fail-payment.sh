#!/usr/bin/env bash
# superscript.description: Always declined (example of a failed run: exit 3, reason on stderr)
# superscript.timeout: 10
set -euo pipefail

echo "card declined" >&2
exit 3
