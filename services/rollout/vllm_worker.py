"""Runs inside vLLM's worker processes: loading a new policy version's weights in place.

vLLM's V1 engine runs the model in other processes and sends `collective_rpc` calls to them
as messages; a Python function cannot travel that way (its encoder refuses one unless
`VLLM_ALLOW_INSECURE_SERIALIZATION=1`). So the reload is a method of a worker extension
class that vLLM imports by name in each worker (`worker_extension_cls`), called by its name
with the checkpoint directory, a string, as its only argument.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: The `worker_extension_cls` vLLM imports in every worker.
WORKER_EXTENSION = "services.rollout.vllm_worker.WeightReloader"
#: The method `VllmEngine.load_weights` calls through `collective_rpc`.
RELOAD_METHOD = "reload_from_dir"


def safetensors_weights(path: str) -> Iterator[tuple[str, Any]]:
    """(name, tensor) of every `*.safetensors` file in `path`, file by file (one file's
    tensors in memory at a time)."""
    from safetensors.torch import load_file

    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors in {path}: not a published policy version")
    for file in files:
        yield from load_file(str(file)).items()


class WeightReloader:
    """Mixed into vLLM's worker class: `self.model_runner` is the worker's. vLLM refuses an
    extension with any attribute its worker already has, so this class declares none but
    the reload method (the annotation below creates no attribute)."""

    model_runner: Any

    def reload_from_dir(self, path: str) -> None:
        """Stream the checkpoint at `path` into the running model's `load_weights`. Returns
        None: the reply travels back through vLLM's message encoder too."""
        # get_model(), not .model: it unwraps the CUDA-graph wrapper vLLM may put around it.
        self.model_runner.get_model().load_weights(weights=safetensors_weights(path))
