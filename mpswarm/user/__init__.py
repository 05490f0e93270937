"""What runs inside a worker: users, tasks and wait times."""
