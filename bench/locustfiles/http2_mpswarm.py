from locust import FastHttpUser, task


class Fast2(FastHttpUser):
    http2 = True

    @task
    def index(self):
        self.client.get("/")
