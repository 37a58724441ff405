# One image for both processes of Event Manager.
#   docker build -t event-manager .
#   docker run -p 8000:8000 event-manager                            the API (the default CMD)
#   docker run --no-healthcheck event-manager worker --threads 8     the delivery worker
# Settings come from EVENT_MANAGER_* variables (`event-manager config` shows them).

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY event_manager event_manager
COPY schema schema
COPY resolvers resolvers
COPY dispatch dispatch
COPY tenants tenants
RUN pip install --no-cache-dir .

FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    EVENT_MANAGER_STATE_DIR=/var/lib/event-manager
RUN groupadd --system --gid 10001 event-manager \
    && useradd --system --no-log-init --uid 10001 --gid 10001 \
        --home-dir /var/lib/event-manager --create-home event-manager
COPY --from=build /opt/venv /opt/venv
# Numeric, so that Kubernetes' runAsNonRoot can tell it is not root.
USER 10001:10001
WORKDIR /var/lib/event-manager
EXPOSE 8000
# The API's liveness. A worker serves no HTTP: it runs with the check off
# (--no-healthcheck, or `disable: true` in docker-compose.yml).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["event-manager"]
CMD ["serve", "--host", "0.0.0.0"]
