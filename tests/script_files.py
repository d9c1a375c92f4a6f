"""Payment scripts written for a test, and the payments they leave in ``payments.log``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

# Pays (one ``KEY ORDER`` line in payments.log per run) and then takes its time, so that
# a test can catch it running; one attempt only, as a payment script should.
SLOW_COLLECT = """#!/usr/bin/env bash
# superscript.description: Collect one payment slowly (test)
# superscript.timeout: 30
# superscript.max_attempts: 1
set -euo pipefail
printf '%s %s\\n' "$SUPERSCRIPT_IDEMPOTENCY_KEY" "$SUPERSCRIPT_ORDER_ID" \\
  >>"$SUPERSCRIPT_DATA_DIR/payments.log"
sleep {seconds}
echo "collected for $SUPERSCRIPT_ORDER_ID"
"""


def write_script(directory: Path, file_name: str, body: str, mode: int = 0o755) -> Path:
    """``body`` as the file ``directory/file_name``, executable unless ``mode`` says not."""
    path = directory / file_name
    path.write_text(body)
    path.chmod(mode)
    return path


def slow_scripts(root: Path, seconds: float) -> Path:
    """A scripts dir under ``root`` holding ``slow-collect``, which sleeps ``seconds``."""
    scripts = root / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    write_script(scripts, "slow-collect.sh", SLOW_COLLECT.format(seconds=seconds))
    return scripts


def payments_by_order(data_dir: Path) -> Counter[str]:
    """How many times each order was paid: the second word of each payments.log line."""
    log = data_dir / "payments.log"
    if not log.exists():
        return Counter()
    return Counter(line.split()[1] for line in log.read_text().splitlines() if line.strip())
