# PgBouncer in transaction mode, for compose's optional `pooler` profile; the build context is the
# repository root.
#
#   docker build -f docker/pgbouncer.Dockerfile .
#
# Debian's PgBouncer (1.18 in bookworm), on the base the functions' images use, so nothing else
# needs to be pulled. Its configuration is written from the environment at start
# (docker/pgbouncer/entrypoint.sh), into /tmp: the root file system stays read-only.
FROM python:3.11-slim-bookworm
# Versions are deliberately not pinned: the image should pick up Debian's security updates on rebuild.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends pgbouncer \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10002 pgbouncer \
    && useradd --system --uid 10002 --gid pgbouncer --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin pgbouncer
COPY docker/pgbouncer/entrypoint.sh /usr/local/bin/audiosvc-pgbouncer
EXPOSE 6432
# Healthy when it accepts connections (the image has no libpq client; Python is there).
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import socket; socket.create_connection(('127.0.0.1', 6432), 2).close()"]
USER 10002:10002
ENTRYPOINT ["/usr/local/bin/audiosvc-pgbouncer"]
