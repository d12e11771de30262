# One image for every part of the distributed setup (docker-compose.yml): the
# API (`topology serve`), the Celery workers (`topology worker`) and the eBPF
# collector (`topology collect`). Debian's python3-bpfcc provides BCC (the PyPI
# package named bcc is an unrelated library); it is pure Python over libbcc in
# /usr/lib/python3/dist-packages, which collectors/ebpf/bcc_import.py adds to
# the path. The kernel headers BCC compiles against come from the host
# (/lib/modules and /usr/src are mounted into the collector).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-bpfcc \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . /src
RUN pip install /src \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/topology --create-home topology

# The API and workers run unprivileged; the collector runs as root (compose sets it).
USER topology
WORKDIR /var/lib/topology
ENV TOPOLOGY_DATA_DIR=/var/lib/topology
EXPOSE 8080
CMD ["topology", "serve"]
