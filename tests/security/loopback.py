"""A loopback listener that records every connection, and the scripted DNS names that point at it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field

# A public address for a scripted first answer: judged public, never connected to (the second answer,
# loopback, is what a client that resolved again would reach).
PUBLIC = "93.184.215.14"


LOOPBACK_NAME = "loopback.test"


KINDS = ("asset", "zapier", "sftp", "s3", "azure")


def rebinding(kind: str) -> str:
    """A name per kind of connection whose first answer is public and every later one loopback: the
    early check sees the public one, the connection itself must see (and refuse) loopback."""
    return f"rebind-{kind}.test"


def scripted_dns() -> dict[str, list[list[str]]]:
    return {rebinding(kind): [[PUBLIC], ["127.0.0.1"]] for kind in KINDS} | {LOOPBACK_NAME: [["127.0.0.1"]]}


@dataclass
class Recorder:
    """Listens on loopback (IPv4 and, where the machine has it, IPv6) and records every connection
    and every byte: a refused destination must leave it empty."""

    port: int
    connections: list[tuple[str, bytes]] = field(default_factory=list)
    servers: list[asyncio.Server] = field(default_factory=list)

    async def start(self) -> Recorder:
        self.servers.append(await asyncio.start_server(self._record, "127.0.0.1", self.port))
        if socket.has_ipv6:
            with contextlib.suppress(OSError):  # no IPv6 loopback here: ::1 cannot be reached at all
                self.servers.append(await asyncio.start_server(self._record, "::1", self.port))
        return self

    async def _record(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str(writer.get_extra_info("peername"))
        entry = (peer, b"")
        self.connections.append(entry)
        index = len(self.connections) - 1
        try:
            data = await asyncio.wait_for(reader.read(65536), 5)
            self.connections[index] = (peer, data)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
            await server.wait_closed()
