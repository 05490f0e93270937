"""Locust running mpswarm's WebSocket client (WebSocketClient) in a User of its own: the client's
cost apart from mpswarm's run loop (bench/protocols_websocket.py, case (d))."""

from locust import User, task

from mpswarm.protocols.websocket import WebSocketClient


class Echo(User):
    def on_start(self):
        self.ws = WebSocketClient(self, self.host, self.environment.events.request)
        self.ws.connect("/")

    @task
    def echo(self):
        self.ws.request(b"0123456789abcdef", name="echo")
