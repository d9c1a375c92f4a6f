"""Inputs of the fee workflow and activity (one model each, as Temporal practice asks)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from superscript.ledger.models import FeeOrder

WORKFLOW_ID_PREFIX = "FEE-WF-"
REFUND_WORKFLOW_ID_PREFIX = "REFUND-WF-"


def fee_workflow_id(order_id: str) -> str:
    """The business key is the workflow ID: one open or closed run per order, ever."""
    return f"{WORKFLOW_ID_PREFIX}{order_id}"


def refund_workflow_id(refund_id: str) -> str:
    """A refund is a fee in reverse, keyed by its own ``refund_id``: one run per refund."""
    return f"{REFUND_WORKFLOW_ID_PREFIX}{refund_id}"


class FeeDeductionInput(BaseModel):
    """Input of ``FeeDeductionWorkflow``."""

    model_config = ConfigDict(frozen=True)

    order: FeeOrder


class ApplyFeeInput(BaseModel):
    """Input of the ``apply_fee`` activity."""

    model_config = ConfigDict(frozen=True)

    order: FeeOrder
