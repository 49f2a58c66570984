"""Locust load of the archive's REST reads (the front, mostly).

    locust -f benchmarks/archive_locustfile.py --headless -u 32 -r 32 -t 20s \
        --host http://127.0.0.1:8080
Set ARCHIVE_RUN to the run to read (default `bench`).
"""

import os

from locust import FastHttpUser, constant, task

RUN = os.environ.get("ARCHIVE_RUN", "bench")


class ArchiveReader(FastHttpUser):
    wait_time = constant(0)

    @task(8)
    def front(self) -> None:
        self.client.get(f"/api/v1/runs/{RUN}/front", name="front")

    @task(1)
    def state(self) -> None:
        self.client.get(f"/api/v1/runs/{RUN}/state", name="state")

    @task(1)
    def nstar(self) -> None:
        self.client.get(f"/api/v1/runs/{RUN}/nstar/q1", name="nstar")
