"""The project's own helpers, imported by its locustfiles (the working directory is on sys.path)."""

import random


def item_path():
    return f"/items/{random.randint(1, 20)}"


def login_form(prefix):
    return {"username": f"{prefix}{random.randint(1, 999)}"}
