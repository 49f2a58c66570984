"""ParetoPO: multi-objective RL for tool-using LLM agents.

`paretopo.core` holds the algorithm (no I/O); `paretopo.config` its typed configuration;
`paretopo.v1` the generated gRPC code; the services live in the top-level `services` package.
"""

__version__ = "0.1.0"
