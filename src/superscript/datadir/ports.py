"""The ports a command will bind, each tried first by binding it as its server will."""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from superscript.datadir.refusals import PortInUse
from superscript.settings import Settings


@dataclass(frozen=True)
class Port:
    """One port a command will bind, and what for (named in a refusal)."""

    purpose: str
    host: str
    port: int


def check_ports(ports: Sequence[Port]) -> None:
    """Refuse unless every port can be bound now, as its server will bind it.

    A connection test alone misses a port that is bound but not (yet) listening, or held
    on another address of the same port; binding is what the real server will do, with
    ``SO_REUSEADDR`` as uvicorn and Temporal set it (so a closed port in TIME_WAIT is free).
    Port 0 (the system picks one) is never in use.
    """
    seen: dict[int, str] = {}
    for wanted in ports:
        if wanted.port == 0:
            continue
        if wanted.port in seen:
            raise PortInUse(
                f"port {wanted.port} is given both for the {seen[wanted.port]} and for the "
                f"{wanted.purpose}; give each its own port"
            )
        seen[wanted.port] = wanted.purpose
        family = socket.AF_INET6 if ":" in wanted.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((wanted.host, wanted.port))
                sock.listen(1)
            except OSError as exc:
                why = "is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
                raise PortInUse(
                    f"port {wanted.port} on {wanted.host} (the {wanted.purpose}) {why}: "
                    "nothing was started. Stop what uses it or choose another port."
                ) from None


def service_ports(settings: Settings, *, api: bool, temporal: bool) -> list[Port]:
    """The ports a command binds: the API's, and the embedded dev server's (127.0.0.1)."""
    ports = [Port("API", settings.host, settings.port)] if api else []
    if temporal:
        ports.append(Port("Temporal gRPC", "127.0.0.1", settings.temporal_port))
        ports.append(Port("Temporal Web UI", "127.0.0.1", settings.temporal_ui_port))
    return ports
