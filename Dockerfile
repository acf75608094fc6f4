# The production image: the project and exactly the versions pinned in pyproject.toml, on the
# Python it requires. One image serves the code server (which also executes the runs), the
# webserver and the daemon (deploy/docker-compose.yaml).
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DAGSTER_HOME=/opt/dagster/home

WORKDIR /opt/aelp2
COPY pyproject.toml README.md ./
COPY aelp2_assets ./aelp2_assets
# The project's own pins only (no extras): dagster 1.13.27 with its 0.29.27 libraries,
# dagster-postgres included.
RUN pip install --no-cache-dir .

COPY deploy/dagster.prod.yaml ${DAGSTER_HOME}/dagster.yaml
COPY deploy/workspace.prod.yaml ./workspace.yaml

RUN useradd --system --home-dir /opt/aelp2 aelp2 \
    && mkdir -p /opt/aelp2/data \
    && chown -R aelp2 ${DAGSTER_HOME} /opt/aelp2/data
USER aelp2

EXPOSE 3000 4000
