# DeepImpute tool suite. One Dockerfile, two variants chosen by BASE_IMAGE, both with TensorFlow 2.21
# (the version the project is tested with):
#   docker build -t deepimpute-tool:0.1.0 .                                     # CPU
#   docker build -t deepimpute-tool:0.1.0-gpu \
#       --build-arg BASE_IMAGE=tensorflow/tensorflow:2.21.0-gpu .                # GPU (CUDA)
# Run it as yourself, so that results in the mounted folder are yours:
#   docker run -u "$(id -u):$(id -g)" -v "$PWD:/data" deepimpute-tool:0.1.0 deepimpute run in.loom out/
ARG BASE_IMAGE=tensorflow/tensorflow:2.21.0
FROM ${BASE_IMAGE}

ARG VERSION=0.1.0
ARG CREATED=unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.title="deepimpute-tool" \
      org.opencontainers.image.description="DeepImpute imputation of single-cell RNA-seq dropouts: click steps over Loom files" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/deepimpute-tool/deepimpute-tool" \
      org.opencontainers.image.url="https://github.com/deepimpute-tool/deepimpute-tool" \
      org.opencontainers.image.documentation="https://github.com/deepimpute-tool/deepimpute-tool#readme" \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    TF_CPP_MIN_LOG_LEVEL=3 \
    MPLCONFIGDIR=/tmp/matplotlib \
    HOME=/tmp

WORKDIR /opt/deepimpute-tool
COPY docker/requirements.txt docker/requirements.txt
RUN python3 -m pip install --no-cache-dir -r docker/requirements.txt

COPY pyproject.toml README.md LICENSE ./
COPY deepimpute_tool deepimpute_tool
RUN python3 -m pip install --no-cache-dir --no-deps . \
    && python3 -c "import tensorflow, deepimpute_tool" \
    && rm -rf /root/.cache build ./*.egg-info

# a default user for `docker run` without -u; any uid given with -u works too (HOME is /tmp)
RUN useradd --create-home --shell /bin/bash --uid 10001 --user-group deepimpute
USER 10001:10001
WORKDIR /data

CMD ["deepimpute", "--help"]
