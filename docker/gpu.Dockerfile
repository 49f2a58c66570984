# GPU images of paretopo: rollout (vLLM engine), learner (DeepSpeed ZeRO under torchrun) and
# search (E5 query encoder on CUDA, faiss-gpu):
#   docker build -f docker/gpu.Dockerfile --target rollout -t paretopo/rollout-gpu:0.1.0 .
#   docker build -f docker/gpu.Dockerfile --target learner -t paretopo/learner-gpu:0.1.0 .
#   docker build -f docker/gpu.Dockerfile --target search  -t paretopo/search-gpu:0.1.0 .
# The CUDA user-space libraries come from the wheels (torch 2.13.0 is built for CUDA 13.0, so
# the host driver must be >= 580); the driver itself comes from the host (NVIDIA Container
# Toolkit / the Kubernetes device plugin). Versions: constraints/gpu.txt.

# Pinned CUDA release and Ubuntu release, matching torch's CUDA 13.0. The devel flavour is used
# for the build stage (DeepSpeed's sdist is built there); the runtime stage is the smaller one.
FROM nvidia/cuda:13.0.1-cudnn-devel-ubuntu22.04 AS build
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
# Ubuntu 22.04 ships Python 3.11 as python3.11 (paretopo requires 3.11).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev \
      build-essential git \
 && rm -rf /var/lib/apt/lists/* \
 && python3.11 -m venv /opt/venv
COPY constraints/gpu.txt /src/constraints/gpu.txt
# torch pinned to the project's version (the PyPI wheel is the CUDA 13.0 build on x86-64 Linux).
RUN pip install -c /src/constraints/gpu.txt torch==2.13.0
# DeepSpeed ships as an sdist whose setup imports torch: built against the torch above, with
# DS_BUILD_OPS=0 (no CUDA op is compiled). The learner chooses a torch optimizer, so no op is
# JIT-compiled at run time either.
RUN DS_BUILD_OPS=0 pip install --no-build-isolation -c /src/constraints/gpu.txt deepspeed==0.19.8
COPY pyproject.toml README.md /src/
COPY paretopo /src/paretopo
COPY services /src/services
# faiss-gpu and faiss-cpu (a base dependency) install the same `faiss` package: remove the CPU
# one, then reinstall the GPU one over the files the removal deleted.
RUN pip install -c /src/constraints/gpu.txt "/src[gpu]" \
 && pip uninstall -y faiss-cpu \
 && pip install --no-deps --force-reinstall -c /src/constraints/gpu.txt faiss-gpu==1.15.1 \
 && python -c "import faiss; faiss.StandardGpuResources" \
 && rm -rf /src

FROM nvidia/cuda:13.0.1-cudnn-runtime-ubuntu22.04 AS runtime
ENV DEBIAN_FRONTEND=noninteractive
# A C compiler and Python's headers: Triton (vLLM's and torch.compile's kernels) compiles a
# small C launcher with gcc against Python.h the first time a kernel runs.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 libpython3.11 python3.11-dev gcc \
      libc6-dev \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 paretopo \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home paretopo \
 && mkdir -p /data /index /app \
 && chown 10001:10001 /data /index
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY configs /app/configs
# HOME and caches under /tmp (Triton's kernel cache too): the root file system can be read-only.
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp HF_HOME=/data/hf-cache TRITON_CACHE_DIR=/tmp/triton CC=gcc
USER 10001:10001

FROM runtime AS rollout
ENV PARETOPO_ROLLOUT_ENGINE=vllm PARETOPO_ROLLOUT_DEVICE=cuda PARETOPO_ROLLOUT_HTTP_PORT=9101
EXPOSE 9101
HEALTHCHECK --interval=15s --timeout=5s --start-period=300s --retries=3 \
  CMD ["python", "-m", "paretopo.healthcheck", "http", "http://127.0.0.1:9101/healthz"]
CMD ["python", "-m", "services.rollout"]

FROM runtime AS learner
EXPOSE 9102
HEALTHCHECK --interval=15s --timeout=5s --start-period=300s --retries=3 \
  CMD ["python", "-m", "paretopo.healthcheck", "http", "http://127.0.0.1:9102/healthz"]
# One process per visible GPU; compose and the chart pass their own torchrun line.
CMD ["torchrun", "--standalone", "--nnodes=1", "--nproc-per-node=gpu", "--shutdown-timeout=840", \
     "-m", "services.learner", "--config", "/config/run.yaml"]

FROM runtime AS search
# A dense (E5) index on GPU: mount the index (and its model, PARETOPO_SEARCH_MODEL_PATH) at /index.
ENV PARETOPO_SEARCH_HOST=0.0.0.0 PARETOPO_SEARCH_PORT=50071 \
    PARETOPO_SEARCH_METRICS_PORT=9171 PARETOPO_SEARCH_INDEX_DIR=/index/e5 \
    PARETOPO_SEARCH_FAISS_GPU=on
EXPOSE 50071 9171
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-m", "paretopo.healthcheck", "grpc", "127.0.0.1:50071"]
CMD ["python", "-m", "services.tools.search"]
