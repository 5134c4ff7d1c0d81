# automations: incident.io automations without Slack.
#   docker build -t automations .
#   docker run -d --name automations \
#     -e INCIDENT_IO_API_KEY \
#     -v "$PWD/automations.toml:/etc/automations/automations.toml:ro" \
#     -v automations-data:/var/lib/automations \
#     automations
# The config needs [store] path under /var/lib/automations and, for the
# HEALTHCHECK, [server] enabled = true (host "0.0.0.0" to reach it from outside).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY automations ./automations
COPY templates ./templates
RUN pip install --no-cache-dir "build>=1.2,<2" \
 && python -m build --wheel --outdir /dist

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AUTOMATIONS_CONFIG=/etc/automations/automations.toml
COPY --from=build /dist/*.whl /tmp/wheels/
RUN pip install --no-cache-dir /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels \
 && useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/automations automations
USER 10001:10001
WORKDIR /var/lib/automations
VOLUME ["/var/lib/automations"]
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["automations", "healthcheck"]
ENTRYPOINT ["automations"]
CMD ["run"]
