# One image recipe for the three functions; the build context is the repository root.
#
#   docker build -f docker/function.Dockerfile --target plain       --build-arg FUNCTION=create_user .
#   docker build -f docker/function.Dockerfile --target with-ffmpeg --build-arg FUNCTION=add_record  .
#   docker build -f docker/function.Dockerfile --target plain       --build-arg FUNCTION=get_record  .
#
# Targets: `plain` (create_user, get_record, and the one-shot `python -m common.storage.db` migration) and
# `with-ffmpeg` (add_record, the only function that converts audio).
#
# Layout inside the image: the dependencies live in the virtualenv /opt/venv, the source tree in /app
# (on PYTHONPATH, not installed into site-packages), so `common` is imported from /app/common and
# common.storage.db's MIGRATIONS_DIR (the directory next to the package) is /app/migrations.

# ---- builder: the third-party dependencies, read from pyproject.toml, in /opt/venv -----------------
FROM python:3.11-slim-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
# Only the dependency list and its pins, so this layer is rebuilt when they change, not on code edits.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('requirements.txt', 'w').write('\n'.join(deps) + '\n')" \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --constraint constraints.txt --requirement requirements.txt

# ---- app: the files every function image carries, collected once -----------------------------------
FROM scratch AS app
COPY bin/run-function /app/bin/run-function
COPY common/ /app/common/
COPY deploy/gunicorn_conf.py /app/deploy/gunicorn_conf.py
COPY functions/ /app/functions/
COPY migrations/ /app/migrations/

# ---- runtime: what every target shares (no application files yet, so system layers stay cached) --
FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:/app/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin app
WORKDIR /app
EXPOSE 8000
# Healthy when the function answers /healthz, which checks its database connection.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('BIND', '0.0.0.0:8000').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]
# bin/run-function starts the function named by $FUNCTION under gunicorn.
CMD ["run-function"]

# ---- plain: create_user, get_record, migrate -------------------------------------------------------
FROM runtime AS plain
COPY --from=builder /opt/venv /opt/venv
COPY --from=app /app /app
USER 10001:10001
ARG FUNCTION
ENV FUNCTION=${FUNCTION}

# ---- with-ffmpeg: add_record ----------------------------------------------------------------------
FROM runtime AS with-ffmpeg
# Versions are deliberately not pinned: the image should pick up Debian's security updates on rebuild.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*
COPY --from=builder /opt/venv /opt/venv
COPY --from=app /app /app
USER 10001:10001
ARG FUNCTION
ENV FUNCTION=${FUNCTION}
