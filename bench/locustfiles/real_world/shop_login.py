"""A shop visitor who logs in first: a session cookie, and a CSRF-style token sent back.

As in Django shops, the token is read from a cookie and returned in an ``X-CSRFToken`` header;
``/echo`` shows whether the cookie and the header arrived. Item pages are grouped with
``name=``, and the visitor logs out in ``on_stop``.
"""

import random

from locust import HttpUser, between, task


class ShopVisitor(HttpUser):
    wait_time = between(0.05, 0.15)

    def on_start(self):
        self.client.post("/login", data={"username": f"visitor{random.randint(1, 999)}"})
        # The demo shop sets no csrftoken cookie, so its session cookie plays that part.
        self.token = self.client.cookies.get("session", "")

    @task(5)
    def item(self):
        self.client.get(f"/items/{random.randint(1, 20)}", name="/items/[id]")

    @task(2)
    def add_to_cart(self):
        self.client.post(
            "/cart",
            data={"item_id": random.randint(1, 20)},
            headers={"X-CSRFToken": self.token},
        )

    @task(2)
    def cart(self):
        with self.client.get("/cart", catch_response=True) as response:
            if response.status_code != 200 or "items" not in response.json():
                response.failure("cart lost: the session cookie was not sent")

    @task(1)
    def token_sent_back(self):
        with self.client.post(
            "/echo",
            name="/echo (csrf)",
            headers={"X-CSRFToken": self.token},
            catch_response=True,
        ) as response:
            headers = response.json()["headers"]
            if headers.get("X-Csrftoken") != self.token:
                response.failure("the CSRF token did not arrive")
            elif f"session={self.token}" not in headers.get("Cookie", ""):
                response.failure("the session cookie did not arrive")

    def on_stop(self):
        self.client.post("/logout")
