#!/usr/bin/env bash
# superscript.description: Collect one payment from the card on file (example: appends a line to payments.log)
# superscript.timeout: 30
# superscript.max_attempts: 1
#
# Usage: collect-payment AMOUNT [CURRENCY]   (AMOUNT in minor units, CURRENCY default USD)
# Not idempotent on purpose: every run appends one more "collected" line. Run through
# SuperScript it runs once per order; SUPERSCRIPT_IDEMPOTENCY_KEY ({name}/{order_id},
# such as collect-payment/order-1) is what a real script would pass to its payment gateway
# so the gateway can dedupe too.
set -euo pipefail

if (($# < 1 || $# > 2)); then
  echo "usage: collect-payment AMOUNT [CURRENCY]" >&2
  exit 2
fi
amount=$1
currency=${2:-USD}
if [[ ! $amount =~ ^[0-9]+$ ]]; then
  echo "invalid AMOUNT: want digits only (minor units)" >&2
  exit 2
fi
if [[ ! $currency =~ ^[A-Z]{3}$ ]]; then
  echo "invalid CURRENCY: want three capital letters such as USD" >&2
  exit 2
fi
order_id=${SUPERSCRIPT_ORDER_ID:?SUPERSCRIPT_ORDER_ID is not set}
key=${SUPERSCRIPT_IDEMPOTENCY_KEY:?SUPERSCRIPT_IDEMPOTENCY_KEY is not set}
data_dir=${SUPERSCRIPT_DATA_DIR:-.superscript}

mkdir -p "$data_dir"
# One printf, one O_APPEND write: concurrent runs never interleave within a line.
printf '%s %s %s %s attempt=%s\n' "$key" "$order_id" "$amount" "$currency" \
  "${SUPERSCRIPT_ATTEMPT:-1}" >>"$data_dir/payments.log"
sleep 0.2 # the payment gateway takes its time
echo "collected $amount $currency for $order_id"
