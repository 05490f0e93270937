"""Locust with wsproto wired up by hand: what a Locust user writes today for a WebSocket echo."""

import socket
import time
from urllib.parse import urlsplit

from locust import User, task
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, Request


class Echo(User):
    def on_start(self):
        parts = urlsplit(self.host)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.conn.send(Request(host=parts.netloc, target="/")))
        while not any(isinstance(e, AcceptConnection) for e in self.conn.events()):
            self.conn.receive_data(self.sock.recv(65536))

    @task
    def echo(self):
        start = time.perf_counter()
        exception, length = None, 0
        try:
            self.sock.sendall(self.conn.send(BytesMessage(data=b"0123456789abcdef")))
            done = False
            while not done:
                self.conn.receive_data(self.sock.recv(65536))
                for event in self.conn.events():
                    if isinstance(event, BytesMessage) and event.message_finished:
                        length, done = len(event.data), True
        except OSError as exc:
            exception = exc
        self.environment.events.request.fire(
            request_type="WS",
            name="echo",
            response_time=(time.perf_counter() - start) * 1000,
            response_length=length,
            exception=exception,
            context={},
        )
