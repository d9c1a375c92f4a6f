"""SuperScript: non-idempotent payment operations made safe to call twice, through Temporal."""
