"""The durable record of each (script, order_id): its args, and its result once decided.

Temporal keeps one run per workflow ID, but not the arguments a later caller compares
against, and not forever (its retention ends). So the args of a key are written here
before its workflow starts (insert-if-absent: the first caller's args win), a caller with
other args is refused as ``idempotency_key_reused``, and the decided result is stored
here too, so that every later read is answered without Temporal.

Each start of the script is recorded too (``script_attempts``), before the script starts:
the limit of ``max_attempts`` starts per key holds even when Temporal has forgotten the
key's workflow (terminated and deleted, or past its retention).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from superscript.db.engine import write_transaction
from superscript.ledger.errors import IdempotencyKeyReused
from superscript.scripts.models import NOT_RUN_AGAIN_REASON, ScriptRunResult
from superscript.scripts.schema import script_attempts, script_runs

RecordStatus = Literal["pending", "succeeded", "failed"]


def encode_args(args: Sequence[str]) -> str:
    """The canonical JSON text of an argv (ASCII only, so any database stores it)."""
    return json.dumps(list(args), ensure_ascii=True, separators=(",", ":"))


def args_digest(args: Sequence[str]) -> str:
    """SHA-256 of the canonical args: equal exactly when the argv lists are equal."""
    return hashlib.sha256(encode_args(args).encode("ascii")).hexdigest()


class ScriptRunRecord(BaseModel):
    """One key's row: what was asked for, and what came of it once decided."""

    model_config = ConfigDict(frozen=True)

    script: str
    order_id: str
    args: list[str]
    args_hash: str
    workflow_id: str
    status: RecordStatus
    result: ScriptRunResult | None

    def same_args(self, args: Sequence[str]) -> bool:
        return self.args_hash == args_digest(args) and self.args == list(args)

    def check_args(self, args: Sequence[str]) -> None:
        """Raise ``IdempotencyKeyReused`` unless ``args`` are the args this key was given."""
        if not self.same_args(args):
            raise IdempotencyKeyReused(
                f"order {self.order_id!r} already has a run of script {self.script!r} with "
                "other args; nothing was run"
            )


class AttemptStarter(BaseModel):
    """Who asks to start an attempt: kept with the attempt, for an operator."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    run_id: str | None = None
    activity_id: str | None = None
    activity_attempt: int | None = None
    worker: str | None = None


class AttemptClaim(BaseModel):
    """What ``claim_attempt`` decided: start attempt ``attempt``, or answer ``result``.

    Exactly one of the two is set. ``refused`` says the result was decided by this very
    claim (the key's attempts were all started already), not found decided.
    """

    model_config = ConfigDict(frozen=True)

    attempt: int | None = None
    result: ScriptRunResult | None = None
    refused: bool = False


class ScriptRuns:
    """The ``script_runs`` table over the ledger's engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def get(self, script: str, order_id: str) -> ScriptRunRecord | None:
        async with self.engine.connect() as conn:
            return await _read(conn, script, order_id)

    async def claim(
        self, script: str, order_id: str, args: Sequence[str], workflow_id: str
    ) -> ScriptRunRecord:
        """Record ``args`` for the key unless it has a record; return the key's record.

        Raises ``IdempotencyKeyReused`` when the key was claimed with other args. A
        concurrent claim of the same key waits for the first one (PostgreSQL's unique
        index, SQLite's single writer), so exactly one set of args ever wins.
        """
        async with write_transaction(self.engine) as conn:
            record = await self._key_row(conn, script, order_id, args, workflow_id)
        record.check_args(args)
        return record

    async def claim_attempt(
        self,
        script: str,
        order_id: str,
        args: Sequence[str],
        max_attempts: int,
        starter: AttemptStarter,
    ) -> AttemptClaim:
        """Record the next start of the key's script, if one may start; in one transaction.

        Called right before the script would start, by whatever path started the run: the
        key's row is created if absent (a workflow started without the API's claim). A
        decided key answers its result and starts nothing. Otherwise the attempts already
        recorded are counted: under ``max_attempts`` the next one is recorded and granted
        (its number is the script's ``SUPERSCRIPT_ATTEMPT``); at the limit none starts,
        and the run is decided ``failed`` here, as the key's result (first result wins),
        with ``attempts`` the number that did start. Concurrent claims of one key queue
        on the key's row (``FOR UPDATE`` on PostgreSQL, the single writer on SQLite), and
        the attempts' primary key backs that up, so two claims never get one number.

        Raises ``IdempotencyKeyReused`` when the key was recorded with other args: nothing
        starts then either.
        """
        async with write_transaction(self.engine) as conn:
            record = await self._key_row(
                conn, script, order_id, args, starter.workflow_id, for_update=True
            )
            record.check_args(args)
            if record.result is not None:
                return AttemptClaim(result=record.result)
            started = await _attempts_started(conn, script, order_id)
            if started >= max_attempts:
                result = not_run_again(script, order_id, started, starter)
                await decide_results(conn, [result])
                return AttemptClaim(result=result, refused=True)
            await conn.execute(
                script_attempts.insert().values(
                    script=script, order_id=order_id, attempt=started + 1, **starter.model_dump()
                )
            )
            return AttemptClaim(attempt=started + 1)

    async def attempts(self, script: str, order_id: str) -> list[dict[str, Any]]:
        """The key's recorded starts, first first (for operators and tests)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(script_attempts)
                .where(script_attempts.c.script == script, script_attempts.c.order_id == order_id)
                .order_by(script_attempts.c.attempt)
            )
            return [row._asdict() for row in rows]

    async def record_result(self, result: ScriptRunResult, args: Sequence[str]) -> ScriptRunRecord:
        """Store the decided run; the first stored result stays (a run decides once).

        Creates the row when the run was started without a claim (by another path than
        the API), so that its result outlives Temporal's retention all the same.
        """
        async with write_transaction(self.engine) as conn:
            await self._make_pending(conn, result.script, result.order_id, args, result.workflow_id)
            await decide_results(conn, [result])
            record = await _read(conn, result.script, result.order_id)
        assert record is not None
        return record

    async def _key_row(
        self,
        conn: AsyncConnection,
        script: str,
        order_id: str,
        args: Sequence[str],
        workflow_id: str,
        *,
        for_update: bool = False,
    ) -> ScriptRunRecord:
        """The key's row, made pending with these args first if absent."""
        await self._make_pending(conn, script, order_id, args, workflow_id)
        record = await _read(conn, script, order_id, for_update=for_update)
        assert record is not None, "a claimed row can't vanish: rows are never deleted"
        return record

    async def _make_pending(
        self,
        conn: AsyncConnection,
        script: str,
        order_id: str,
        args: Sequence[str],
        workflow_id: str,
    ) -> None:
        """The key's pending row, ``INSERT ... ON CONFLICT DO NOTHING`` in the engine's
        dialect: every path that may be first to a key (claim, attempt, result) makes it."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        await conn.execute(
            dialect.insert(script_runs)
            .values(
                script=script,
                order_id=order_id,
                args=encode_args(args),
                args_hash=args_digest(args),
                workflow_id=workflow_id,
                status="pending",
            )
            .on_conflict_do_nothing()
        )


async def _attempts_started(conn: AsyncConnection, script: str, order_id: str) -> int:
    """How many attempts of the key's script have started (the highest number granted)."""
    started = await conn.execute(
        select(func.coalesce(func.max(script_attempts.c.attempt), 0)).where(
            script_attempts.c.script == script, script_attempts.c.order_id == order_id
        )
    )
    count: int = started.scalar_one()
    return count


def not_run_again(
    script: str, order_id: str, started: int, starter: AttemptStarter
) -> ScriptRunResult:
    """The result of a key whose attempts have all started: failed, and nothing ran now."""
    return ScriptRunResult(
        order_id=order_id,
        script=script,
        status="failed",
        exit_code=None,
        stdout="",
        stderr="",
        attempts=started,
        workflow_id=starter.workflow_id,
        run_id=starter.run_id,
        reason=NOT_RUN_AGAIN_REASON,
    )


async def decide_results(conn: AsyncConnection, results: Sequence[ScriptRunResult]) -> None:
    """Store each result as its key's, unless the key has one (the first result is final)."""
    if not results:
        return
    await conn.execute(
        update(script_runs)
        .where(
            script_runs.c.script == bindparam("b_script"),
            script_runs.c.order_id == bindparam("b_order_id"),
            script_runs.c.result.is_(None),
        )
        .values(status=bindparam("b_status"), result=bindparam("b_result"), decided_at=func.now()),
        [
            {
                "b_script": r.script,
                "b_order_id": r.order_id,
                "b_status": r.status,
                "b_result": r.model_dump_json(),
            }
            for r in results
        ],
    )


async def _read(
    conn: AsyncConnection, script: str, order_id: str, *, for_update: bool = False
) -> ScriptRunRecord | None:
    query = select(script_runs).where(
        script_runs.c.script == script, script_runs.c.order_id == order_id
    )
    if for_update:  # PostgreSQL locks the row; SQLite ignores it (its writer is alone)
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    values = row._asdict()
    raw_result = values["result"]
    return ScriptRunRecord(
        script=values["script"],
        order_id=values["order_id"],
        args=json.loads(values["args"]),
        args_hash=values["args_hash"],
        workflow_id=values["workflow_id"],
        status=values["status"],
        result=None if raw_result is None else ScriptRunResult.model_validate_json(raw_result),
    )
