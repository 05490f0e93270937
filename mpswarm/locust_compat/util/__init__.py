"""``locust.util``: the helpers locustfiles import from Locust's ``util`` package."""
