"""A WebSocket client: one connection per user, round trips and a message it waits for.

Needs the websocket extra (pip install 'mpswarm[websocket]'); the demo target echoes at
/ws/echo (an http:// host means ws://, https:// means wss://).

    mpswarm serve --port 8088 -- mpswarm -f examples/websocket_chat.py \
        -H http://127.0.0.1:8088 --headless -u 20 -r 10 -t 20s --processes 2
"""

from mpswarm import WebSocketUser, constant_throughput, task


class ChatClient(WebSocketUser):
    # Each user makes at most 10 task runs per second, however fast the server answers.
    wait_time = constant_throughput(10)

    def on_start(self):
        self.ws.connect("/ws/echo", name="/ws/echo")

    @task(4)
    def say(self):
        # send, then wait for the next message: one recorded round trip (WS-REQUEST)
        self.ws.request('{"say": "hello"}', name="say")

    @task
    def upload(self):
        self.ws.send(b"\x00" * 4096, name="upload")  # WS-SEND
        self.ws.recv(timeout=5, name="upload echo")  # WS-RECV; None if it failed

    @task
    def reconnect_if_dropped(self):
        # a failed call is recorded, never raised: the user goes on, and reconnects here
        if not self.ws.connected:
            self.ws.connect("/ws/echo", name="/ws/echo")
