"""The retry policy of every idempotent activity: infrastructure faults never end the work.

Each activity that uses it is safe to run again (the ledger's unique order key, item
statuses, first-result-wins records), and giving up would leave an order undecided under
a workflow ID that can never run again. So: back off up to 30 s, with no attempt limit;
the activity's schedule-to-close timeout, where it has one, is the only bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from temporalio.common import RetryPolicy


def until_done(non_retryable: Sequence[str] = ()) -> RetryPolicy:
    """Retry everything but the given (business) error types, for as long as it takes."""
    return RetryPolicy(
        initial_interval=timedelta(milliseconds=200),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=0,
        non_retryable_error_types=list(non_retryable),
    )
