from mpswarm import task
from mpswarm.protocols.websocket import WebSocketUser


class Echo(WebSocketUser):
    def on_start(self):
        self.ws.connect("/")

    @task
    def echo(self):
        self.ws.request(b"0123456789abcdef", name="echo")
