"""The worker's script slots, as a script chunk takes and holds them.

A chunk claims a key only once a slot is held for it (but ``LOOKAHEAD`` keys), so that a
claimed key starts at once: a key claimed while it waits for a slot would count as
started if the worker were killed meanwhile, though its script never ran.
"""

from __future__ import annotations

import asyncio

from superscript.testing_hooks import failpoint

# Where a test freezes a chunk that must wait for a slot (every slot of the worker busy).
SLOTS_FULL = "script-chunk-slots-full"
# Runs a chunk claims beyond its free slots, each waiting for the next slot to come free,
# so that a slot is not idle during a claim's transaction. A killed worker leaves those
# counted as started too: at most ``LOOKAHEAD`` per chunk beyond its runs in flight.
LOOKAHEAD = 4


async def take_slots(slots: asyncio.Semaphore, most: int) -> int:
    """One slot, waited for, then every other one free right now, up to ``most``."""
    if slots.locked():
        await failpoint(SLOTS_FULL)
    await slots.acquire()
    taken = 1
    while taken < most and not slots.locked():
        await slots.acquire()  # free: returns at once, without yielding
        taken += 1
    return taken


class Slot:
    """One slot held by one key's run: given back once, whichever way the run ends."""

    def __init__(self, slots: asyncio.Semaphore, *, held: bool = True) -> None:
        self._slots = slots
        self._held = held

    @property
    def held(self) -> bool:
        return self._held

    def give_back(self) -> None:
        if self._held:
            self._held = False
            self._slots.release()

    async def take_again(self) -> None:
        """Wait for a slot for the key's next attempt (claimed only once this returns)."""
        await self._slots.acquire()
        self._held = True
