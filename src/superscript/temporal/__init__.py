"""What every workflow's caller and every activity share, written once.

``client`` connects, ``start`` starts or joins a workflow by its ID and awaits its result
with a deadline, ``heartbeat`` keeps an activity alive while it waits, ``retries`` is the
retry policy of the idempotent activities. Nothing is imported here: workflows import
``retries`` through the sandbox, which must not pull in the client.
"""
