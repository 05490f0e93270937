from locust import HttpUser, task


class Http(HttpUser):
    @task
    def index(self):
        self.client.get("/")
