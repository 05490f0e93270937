"""HTTP/2 in Locust today: httpx with http2=True wired up by hand, firing events.request."""

import time

import httpx
from locust import User, task


class Httpx2(User):
    def on_start(self):
        self.http = httpx.Client(base_url=self.host, http2=True, http1=False)

    def on_stop(self):
        self.http.close()

    @task
    def index(self):
        start = time.perf_counter()
        exception = None
        length = 0
        try:
            response = self.http.get("/")
            length = len(response.content)
        except Exception as exc:
            exception = exc
        self.environment.events.request.fire(
            request_type="GET",
            name="/",
            response_time=(time.perf_counter() - start) * 1000,
            response_length=length,
            exception=exception,
            context={},
        )
