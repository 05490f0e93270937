from locust import FastHttpUser, task


class Fast(FastHttpUser):
    @task
    def index(self):
        self.client.get("/")
