"""Fee deduction: the seed's naive DeductFee and its idempotent Temporal workflow."""
