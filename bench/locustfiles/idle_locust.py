from locust import FastHttpUser, HttpUser, constant, task


class IdleFast(FastHttpUser):
    wait_time = constant(3600)

    @task
    def index(self):
        self.client.get("/")


class IdleHttp(HttpUser):
    wait_time = constant(3600)

    @task
    def index(self):
        self.client.get("/")
