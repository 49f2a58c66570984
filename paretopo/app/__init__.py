"""The application: the console script, the local stack, the demo, bench and evaluation runner.

The one part of `paretopo` that may import `services`: it starts services, drives them and
reports on them. Everything else in `paretopo` is the library the services stand on
(contracts, tasks, the pure core), and imports no service (`tests/unit/test_architecture.py`).
"""
