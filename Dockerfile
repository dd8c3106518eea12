# recipe-outbound worker image.
#   docker build -t recipe-outbound:0.1.0 .
# Dependencies come from requirements.lock (exact versions, checked by hash) in a layer of their own,
# so a change to the service's code rebuilds only the last small layer.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/outbound
COPY requirements.lock /tmp/requirements.lock
RUN /opt/outbound/bin/pip install --no-cache-dir --require-hashes --no-deps -r /tmp/requirements.lock
WORKDIR /src
COPY pyproject.toml README.md ./
COPY topics ./topics
COPY schemas ./schemas
COPY service ./service
# The topic catalog and the schemas are package data (service/topics and service/schemas link to the
# folders above): the installed service reads nothing from /src.
RUN /opt/outbound/bin/pip install --no-cache-dir --no-deps . \
    && /opt/outbound/bin/python -c "from service.settings import Settings; s = Settings(); assert s.topic_catalog.is_file() and '/src/' not in str(s.topic_catalog)"

FROM ${PYTHON_IMAGE}
# A numeric user, so that Kubernetes' runAsNonRoot can verify it; it owns only the writable folders.
RUN groupadd --gid 10001 outbound \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin outbound \
    && mkdir -p /var/lib/outbound/data /var/lib/outbound/spool \
    && chown 10001:10001 /var/lib/outbound/data /var/lib/outbound/spool
COPY --from=build /opt/outbound /opt/outbound
ENV PATH=/opt/outbound/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    OUTBOUND_DATA_DIR=/var/lib/outbound/data \
    OUTBOUND_SPOOL_DIR=/var/lib/outbound/spool \
    OUTBOUND_LOCAL_DELIVERY_ROOT=/var/lib/outbound/data/local-deliveries \
    OUTBOUND_WEB_HOST=0.0.0.0
USER 10001:10001
WORKDIR /var/lib/outbound
EXPOSE 6066
ENTRYPOINT ["outbound"]
CMD ["worker"]
