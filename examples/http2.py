"""HTTP/2: a page and its assets fetched at once, as a browser does, multiplexed as streams on
one connection per user (FastHttpUser with ``http2 = True``).

An h2c target on loopback (nginx: ``listen 127.0.0.1:8443 http2;`` and
``location / { return 200 "ok"; }``; an https:// host negotiates HTTP/2 by ALPN instead):

    mpswarm -f examples/http2.py -H http://127.0.0.1:8443 --headless -u 10 -r 10 -t 20s \
        --processes 2
"""

from gevent.pool import Pool

from mpswarm import FastHttpUser, between, task


class Browser(FastHttpUser):
    http2 = True  # needs the h2 package: pip install 'mpswarm[http2]'
    wait_time = between(0.5, 1.5)

    @task
    def page(self):
        self.client.get("/")
        # The assets at once: each is a stream on the same connection (within the server's
        # SETTINGS_MAX_CONCURRENT_STREAMS), each recorded as its own request.
        assets = Pool(6)
        for number in range(6):
            assets.spawn(self.client.get, f"/item/{number}", name="/item/[asset]")
        assets.join()
