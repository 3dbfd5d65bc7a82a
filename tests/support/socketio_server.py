#!/usr/bin/env python3
"""A real Socket.IO 2 / Engine.IO 3 server (python-socketio 4.6.1) for tests/socketio_providers.rs.

It plays either Streamlabs (token in the handshake query, HTTP 401 on a bad one) or the legacy
StreamElements realtime socket (any handshake, then `authenticate` -> `authenticated` or
`unauthorized`). It is driven line by line on stdin and reports on stdout, one line each, so the
Rust test can wait for facts instead of sleeping:

    stdout: "port N" once listening, "handshake ok|bad", "connected SID", "disconnected SID",
            "authenticate ok|bad", "ack <command>" after each command has been carried out
    stdin:  "emit EVENT FILE"    emit the sample file's `data` as EVENT to every client
            "emitjson EVENT JSON" emit an inline JSON argument
            "pongs on|off"        answer Engine.IO pings or silently ignore them
            "drop"                abort every client's TCP connection (no close frame)
            "close"               close every client the Engine.IO way (packet 1)

Run with the venv from scripts/setup-socketio-venv.sh.
"""

import argparse
import asyncio
import json
import sys

from aiohttp import web
import engineio
from engineio import asyncio_socket
from engineio import packet as eio_packet
import socketio
from socketio import asyncio_manager

answer_pings = True


class Manager(asyncio_manager.AsyncManager):
    """python-socketio 4.x passes bare coroutines to asyncio.wait(), which Python 3.11 refuses."""

    async def emit(self, event, data, namespace, room=None, skip_sid=None,
                   callback=None, **kwargs):
        if namespace not in self.rooms or room not in self.rooms[namespace]:
            return
        tasks = [asyncio.ensure_future(self.server._emit_internal(sid, event, data, namespace, None))
                 for sid in self.get_participants(namespace, room)]
        if tasks:
            await asyncio.wait(tasks)


announced = {"pingInterval": 25000, "pingTimeout": 60000}
_original_send = asyncio_socket.AsyncSocket.send


async def _send(self, pkt):
    # The client's liveness is under test, so the ping timing told to the client is short while
    # the server's own timeouts stay long: the server must never be the side that gives up.
    if pkt.packet_type == eio_packet.OPEN and isinstance(pkt.data, dict):
        pkt.data.update(announced)
    await _original_send(self, pkt)


asyncio_socket.AsyncSocket.send = _send

_original_receive = asyncio_socket.AsyncSocket.receive


async def _receive(self, pkt):
    # "pongs off" models a server that is still connected but no longer alive.
    if pkt.packet_type == eio_packet.PING and not answer_pings:
        return
    await _original_receive(self, pkt)


asyncio_socket.AsyncSocket.receive = _receive


def say(line):
    print(line, flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["streamlabs", "streamelements"], required=True)
    parser.add_argument("--token", required=True)
    # What the client is told; see _send.
    parser.add_argument("--ping-interval", type=float, default=25.0)
    parser.add_argument("--ping-timeout", type=float, default=60.0)
    args = parser.parse_args()

    announced["pingInterval"] = int(args.ping_interval * 1000)
    announced["pingTimeout"] = int(args.ping_timeout * 1000)
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=Manager(),
        ping_interval=3600,
        ping_timeout=3600,
        logger=False,
        engineio_logger=False,
    )
    app = web.Application()
    sio.attach(app)

    @sio.event
    async def connect(sid, environ):
        if args.mode == "streamlabs":
            query = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
            if query.get("token") != args.token:
                say("handshake bad")
                return False
        say("handshake ok")
        say("connected " + sid)
        return True

    @sio.event
    async def disconnect(sid):
        say("disconnected " + sid)

    @sio.event
    async def authenticate(sid, data):
        if isinstance(data, dict) and data.get("token") == args.token:
            say("authenticate ok")
            await sio.emit("authenticated", {
                "clientId": sid,
                "channelId": "5afbafb0c3a79ebedde18249",
                "project": "realtime",
                "message": "You are in a maze of dank memes, all alike.",
            }, room=sid)
        else:
            say("authenticate bad")
            await sio.emit("unauthorized", {"message": "invalid token"}, room=sid)

    async def control():
        global answer_pings
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                # The test process is gone: do not outlive it.
                raise SystemExit(0)
            parts = line.strip().split(" ", 2)
            if not parts or not parts[0]:
                continue
            cmd = parts[0]
            if cmd == "emit":
                with open(parts[2]) as f:
                    await sio.emit(parts[1], json.load(f)["data"])
            elif cmd == "emitjson":
                await sio.emit(parts[1], json.loads(parts[2]))
            elif cmd == "pongs":
                answer_pings = parts[1] == "on"
            elif cmd == "drop":
                for environ in list(sio.environ.values()):
                    transport = environ["aiohttp.request"].transport
                    if transport is not None:
                        transport.abort()
            elif cmd == "close":
                for sid in list(sio.eio.sockets):
                    await sio.eio.disconnect(sid)
            say("ack " + cmd)

    async def start():
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        say("port %d" % port)
        await control()

    asyncio.run(start())


if __name__ == "__main__":
    main()
