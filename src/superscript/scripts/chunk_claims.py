"""Claiming many keys of one script at once, and storing many decided runs at once.

What a batch's chunk activity uses to run keys itself, without a workflow per key. The
rules are ``ScriptRuns.claim_attempt``'s, for a group of keys in one transaction:

- a key is claimed under the claimer's workflow ID (``BATCH-WF-{batch_id}``) and, in the
  same transaction, its first attempt is recorded: a key that the claimer owns and that
  is still pending therefore always has an attempt row naming the activity that started
  it (``AttemptStarter.activity_id``);
- a key the claimer owns is run by the activity that claimed it, also when that activity
  is retried (a lost worker): the retry claims the next attempt, and a key whose
  ``max_attempts`` all started is decided ``failed`` ("not run again"), exactly as the
  single-run workflow's activity does;
- a claimed attempt counts as started at once, so a caller claims only keys it can start
  at once or nearly (the chunk orchestrator holds a free slot for each but a few, see
  ``superscript.batches.script_slots``);
- a key claimed by anyone else (the API's ``SCRIPT-WF-{name}/{order_id}``, another batch,
  another chunk of this batch) and still pending is ``elsewhere``: the caller waits for
  its run and starts nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from superscript.db.metadata import IN_LIST_SIZE
from superscript.scripts.models import ScriptRunResult
from superscript.scripts.records import (
    AttemptStarter,
    args_digest,
    decide_results,
    encode_args,
    not_run_again,
)
from superscript.scripts.schema import script_attempts, script_runs

ClaimKind = Literal["run", "decided", "refused", "mismatch", "elsewhere"]


@dataclass(frozen=True)
class KeyClaim:
    """What a group claim decided for one key.

    ``run``: start attempt ``attempt``; ``decided``: the key has ``result`` already;
    ``refused``: its attempts were all started, ``result`` is decided by this claim;
    ``mismatch``: the key has other args; ``elsewhere``: another claimer runs it.
    """

    order_id: str
    kind: ClaimKind
    attempt: int | None = None
    result: ScriptRunResult | None = None


@dataclass(frozen=True)
class _Row:
    args: list[str]
    args_hash: str
    workflow_id: str
    result: ScriptRunResult | None


async def claim_group(
    conn: AsyncConnection,
    script: str,
    keys: Sequence[tuple[str, list[str]]],
    max_attempts: int,
    starter: AttemptStarter,
) -> list[KeyClaim]:
    """Claim each ``(order_id, args)`` and its next attempt, in the caller's transaction.

    The keys must be distinct; the claims come back in ``order_id`` order. Bulk
    statements: one insert of the pending rows, one read of the rows and one of their
    attempts per ``IN_LIST_SIZE`` keys, one insert of the granted attempts, one update of
    the refused keys.
    """
    # One lock order for every claimer (PostgreSQL): concurrent groups never deadlock.
    keys = sorted(keys)
    await _make_pending(conn, script, keys, starter.workflow_id)
    order_ids = [order_id for order_id, _ in keys]
    rows = await _rows(conn, script, order_ids)
    attempts = await _attempts(conn, script, order_ids)
    claims = [
        _decide_key(
            script, order_id, args, rows[order_id], attempts.get(order_id), max_attempts, starter
        )
        for order_id, args in keys
    ]
    granted = [
        {"script": script, "order_id": c.order_id, "attempt": c.attempt, **starter.model_dump()}
        for c in claims
        if c.kind == "run"
    ]
    if granted:
        await conn.execute(script_attempts.insert(), granted)
    refused = [c.result for c in claims if c.kind == "refused" and c.result is not None]
    await decide_results(conn, refused)
    return claims


def _decide_key(
    script: str,
    order_id: str,
    args: list[str],
    row: _Row,
    last: tuple[int, str | None] | None,
    max_attempts: int,
    starter: AttemptStarter,
) -> KeyClaim:
    """One key's claim, by the rules of the module's docstring."""
    if row.args_hash != args_digest(args) or row.args != args:
        return KeyClaim(order_id, "mismatch")
    if row.result is not None:
        return KeyClaim(order_id, "decided", result=row.result)
    started, by = last if last is not None else (0, None)
    mine = row.workflow_id == starter.workflow_id and (last is None or by == starter.activity_id)
    if not mine:
        return KeyClaim(order_id, "elsewhere")
    if started >= max_attempts:
        return KeyClaim(
            order_id, "refused", result=not_run_again(script, order_id, started, starter)
        )
    return KeyClaim(order_id, "run", attempt=started + 1)


async def stored_results(
    conn: AsyncConnection, script: str, order_ids: Sequence[str]
) -> dict[str, ScriptRunResult]:
    """The decided results of these keys, as the ledger holds them."""
    rows = await _rows(conn, script, order_ids)
    return {order_id: row.result for order_id, row in rows.items() if row.result is not None}


async def _make_pending(
    conn: AsyncConnection, script: str, keys: Sequence[tuple[str, list[str]]], workflow_id: str
) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    await conn.execute(
        dialect.insert(script_runs).on_conflict_do_nothing(),
        [
            {
                "script": script,
                "order_id": order_id,
                "args": encode_args(args),
                "args_hash": args_digest(args),
                "workflow_id": workflow_id,
                "status": "pending",
            }
            for order_id, args in keys
        ],
    )


async def _rows(conn: AsyncConnection, script: str, order_ids: Sequence[str]) -> dict[str, _Row]:
    """The keys' rows, locked on PostgreSQL (SQLite's writer is alone)."""
    found: dict[str, _Row] = {}
    for part in range(0, len(order_ids), IN_LIST_SIZE):
        query = select(
            script_runs.c.order_id,
            script_runs.c.args,
            script_runs.c.args_hash,
            script_runs.c.workflow_id,
            script_runs.c.result,
        ).where(
            script_runs.c.script == script,
            script_runs.c.order_id.in_(order_ids[part : part + IN_LIST_SIZE]),
        )
        if conn.dialect.name == "postgresql":
            query = query.order_by(script_runs.c.order_id).with_for_update()
        for order_id, args, args_hash, workflow_id, result in await conn.execute(query):
            found[order_id] = _Row(
                args=json.loads(args),
                args_hash=args_hash,
                workflow_id=workflow_id,
                result=None if result is None else ScriptRunResult.model_validate_json(result),
            )
    return found


async def _attempts(
    conn: AsyncConnection, script: str, order_ids: Sequence[str]
) -> dict[str, tuple[int, str | None]]:
    """Each key's last recorded attempt: its number and the activity that started it."""
    last: dict[str, tuple[int, str | None]] = {}
    for part in range(0, len(order_ids), IN_LIST_SIZE):
        rows = await conn.execute(
            select(
                script_attempts.c.order_id,
                script_attempts.c.attempt,
                script_attempts.c.activity_id,
            ).where(
                script_attempts.c.script == script,
                script_attempts.c.order_id.in_(order_ids[part : part + IN_LIST_SIZE]),
            )
        )
        for order_id, attempt, activity_id in rows:
            if order_id not in last or attempt > last[order_id][0]:
                last[order_id] = (attempt, activity_id)
    return last
