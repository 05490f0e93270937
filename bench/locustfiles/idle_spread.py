"""Idle FastHttpUsers spread over several loopback addresses (bench/idle_users.py).

One class per address in IDLE_HOSTS (comma-separated base URLs), equal weights: each user
makes one request, keeps its connection alive and waits an hour. The host is a class
attribute, so spreading the users costs none of them a byte.
"""

import os

from mpswarm import FastHttpUser, constant, task


def _index(self):
    self.client.get("/")


for _i, _url in enumerate(os.environ.get("IDLE_HOSTS", "http://127.0.0.1:8080").split(",")):
    globals()[f"Idle{_i}"] = type(
        f"Idle{_i}",
        (FastHttpUser,),
        {"host": _url, "wait_time": constant(3600), "index": task(_index)},
    )
