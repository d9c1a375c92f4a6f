"""The seed's non-idempotent DeductFee, kept on purpose to show the double charge."""

from __future__ import annotations

import asyncio
import random

from superscript.ledger import Account, FeeOrder, Ledger


async def naive_deduct_fee(ledger: Ledger, order: FeeOrder, delay: tuple[float, float]) -> Account:
    """Wait like a slow network, then deduct: every call charges again."""
    low, high = delay
    await asyncio.sleep(random.uniform(low, high))
    return await ledger.naive_deduct(order)
