# DeepImpute tool suite on the official TensorFlow GPU image.
#   docker build -t deepimpute-tool:0.1.0 .
#   docker run --gpus all -v "$PWD:/data" deepimpute-tool:0.1.0 deepimpute run in.loom out/
# BASE_IMAGE must provide Python 3 with pip and TensorFlow 2.21 (the version tested with).
ARG BASE_IMAGE=tensorflow/tensorflow:2.21.0-gpu
FROM ${BASE_IMAGE}

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="deepimpute-tool" \
      org.opencontainers.image.description="DeepImpute imputation of single-cell RNA-seq dropouts: click steps over Loom files" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://doi.org/10.1186/s13059-019-1837-6" \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    TF_CPP_MIN_LOG_LEVEL=3 \
    MPLCONFIGDIR=/tmp/matplotlib

WORKDIR /opt/deepimpute-tool
COPY docker/requirements.txt docker/requirements.txt
RUN python3 -m pip install --no-cache-dir -r docker/requirements.txt

COPY pyproject.toml README.md ./
COPY deepimpute_tool deepimpute_tool
RUN python3 -m pip install --no-cache-dir --no-deps . \
    && python3 -c "import tensorflow, deepimpute_tool" \
    && rm -rf /root/.cache build ./*.egg-info

RUN useradd --create-home --shell /bin/bash --uid 10001 --user-group deepimpute
USER 10001:10001
WORKDIR /data

CMD ["deepimpute", "--help"]
