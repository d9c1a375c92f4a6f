"""Why a command refuses to start: each refusal is raised before anything of it starts."""

from __future__ import annotations


class StartRefused(RuntimeError):
    """A command refuses to start; nothing of it has started. The message says why."""


class DataDirInUse(StartRefused):
    pass


class PortInUse(StartRefused):
    pass


class LedgerMismatch(StartRefused):
    pass
