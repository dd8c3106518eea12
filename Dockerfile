# recipe-outbound worker image. Built and deployed by the deploy issue; kept buildable meanwhile.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 outbound
COPY --from=build /install /usr/local
WORKDIR /app
COPY topics ./topics
COPY schemas ./schemas
ENV OUTBOUND_TOPIC_CATALOG=/app/topics/catalog.json \
    OUTBOUND_SCHEMAS_DIR=/app/schemas \
    OUTBOUND_DATA_DIR=/var/lib/outbound/data \
    OUTBOUND_SPOOL_DIR=/var/lib/outbound/spool \
    OUTBOUND_WEB_HOST=0.0.0.0
RUN mkdir -p /var/lib/outbound && chown outbound /var/lib/outbound
USER outbound
EXPOSE 6066
ENTRYPOINT ["outbound"]
CMD ["worker"]
