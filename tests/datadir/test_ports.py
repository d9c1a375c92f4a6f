"""Every port a command serves is checked by binding it, before anything starts."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from superscript import datadir
from superscript.devserver import port_open
from tests.processes import free_port


def test_ports_are_checked_by_binding(tmp_path: Path) -> None:
    # Bound but not listening: a connection test finds nothing there, yet no server can
    # bind it. Only binding tells.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        assert not asyncio.run(port_open(port))
        with pytest.raises(datadir.PortInUse) as refusal:
            datadir.check_ports(
                [
                    datadir.Port("API", "127.0.0.1", free_port()),
                    datadir.Port("Temporal gRPC", "127.0.0.1", port),
                ]
            )
    assert f"port {port} on 127.0.0.1 (the Temporal gRPC) is already in use" in str(refusal.value)
    same = free_port()
    with pytest.raises(datadir.PortInUse, match=f"port {same} is given both for the API"):
        datadir.check_ports(
            [
                datadir.Port("API", "127.0.0.1", same),
                datadir.Port("Temporal Web UI", "127.0.0.1", same),
            ]
        )
    # Free again once let go; port 0 (the system picks) is never in use.
    datadir.check_ports([datadir.Port("API", "127.0.0.1", 0), datadir.Port("x", "127.0.0.1", port)])
