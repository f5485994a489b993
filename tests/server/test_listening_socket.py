"""The server's listening socket: the connections asyncio accepts on it send without Nagle.

With Nagle on, the body of every answer after the first on a kept-alive connection waits
for the client's delayed ACK of the headers: each part URL of an upload then took ~40 ms
instead of ~2 ms on loopback. asyncio sets TCP_NODELAY only on sockets whose proto is
IPPROTO_TCP, so this is checked where uvicorn gets it: on the transport of an accepted
connection of an asyncio server made on the socket.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from ghga_tasks.server.runner import listening_socket


def nodelay_of_accepted(sock: socket.socket) -> int:
    """TCP_NODELAY of the server side of one connection accepted on `sock`."""

    async def main() -> int:
        accepted: asyncio.Future = asyncio.get_running_loop().create_future()

        class Record(asyncio.Protocol):
            def connection_made(self, transport) -> None:
                peer = transport.get_extra_info("socket")
                accepted.set_result(peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Record, sock=sock)
        try:
            host, port = sock.getsockname()[:2]
            _, writer = await asyncio.open_connection(host, port)
            try:
                return await asyncio.wait_for(accepted, 30)
            finally:
                writer.close()
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(main())


def test_accepted_connections_have_nagle_off():
    assert nodelay_of_accepted(listening_socket("127.0.0.1", 0)) != 0


def test_a_socket_made_without_its_proto_would_keep_nagle_on():
    # what the server did before: the check above can tell the two apart
    sock = socket.socket(socket.AF_INET)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    assert nodelay_of_accepted(sock) == 0


def test_a_taken_port_raises_oserror():
    with listening_socket("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            listening_socket("127.0.0.1", port)
