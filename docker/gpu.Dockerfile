# GPU images of paretopo: rollout (vLLM engine) and learner (DeepSpeed ZeRO).
#   docker build -f docker/gpu.Dockerfile --target rollout -t paretopo/rollout-gpu:0.1.0 .
#   docker build -f docker/gpu.Dockerfile --target learner -t paretopo/learner-gpu:0.1.0 .
# The CUDA user-space libraries come from the base image and the wheels; the driver comes
# from the host (NVIDIA Container Toolkit / the Kubernetes device plugin).

# Pinned CUDA release and Ubuntu release. The devel flavour is used for the build stage
# (DeepSpeed may compile ops while installing); the runtime stage is the smaller one.
FROM nvidia/cuda:12.8.1-cudnn-devel-ubuntu22.04 AS build
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
# Ubuntu 22.04 ships Python 3.11 as python3.11 (paretopo requires 3.11).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev \
      build-essential git \
 && rm -rf /var/lib/apt/lists/* \
 && python3.11 -m venv /opt/venv
# torch pinned to the project's version (the PyPI wheel is the CUDA build on x86-64 Linux).
RUN pip install torch==2.13.0
COPY pyproject.toml README.md /src/
COPY paretopo /src/paretopo
COPY services /src/services
RUN pip install "/src[gpu]" && rm -rf /src

FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04 AS runtime
ENV DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 libpython3.11 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 paretopo \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home paretopo \
 && mkdir -p /data /app \
 && chown 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY configs /app/configs
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp HF_HOME=/data/hf-cache
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
CMD ["python", "-m", "services.learner", "--config", "/config/run.yaml"]
