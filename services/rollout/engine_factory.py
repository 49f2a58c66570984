"""Build the engine a worker's settings name; vLLM is imported only when chosen.

Apart from `engine.py` (the interface and its types) so that the engines import those types
without importing the factory that imports them.
"""

from __future__ import annotations

from services.rollout.engine import Engine
from services.rollout.settings import EngineSettings


def build_engine(settings: EngineSettings) -> Engine:
    """The engine `settings.kind` names, with the weights at `settings.model_path` loaded."""
    if settings.kind == "vllm":
        from services.rollout.vllm_engine import VllmEngine

        return VllmEngine(settings)
    from services.rollout.torch_engine import TorchEngine

    return TorchEngine(settings)
