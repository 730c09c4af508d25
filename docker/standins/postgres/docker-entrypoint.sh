#!/usr/bin/env bash
# Entrypoint of the postgres:17-alpine stand-in: the part of the official image's docker-entrypoint.sh
# that this project relies on (POSTGRES_USER / POSTGRES_PASSWORD[_FILE] / POSTGRES_DB,
# POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD, /docker-entrypoint-initdb.d), on Debian's binaries.
set -Eeuo pipefail

# `docker run IMAGE -c shared_buffers=256MB` means postgres with those options.
if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
    # As root: make the data and socket directories the postgres user's, then run again as that user.
    # setpriv (util-linux) drops privileges, which no-new-privileges allows; it needs CHOWN, FOWNER,
    # SETUID and SETGID, no more.
    mkdir -p "$PGDATA" /var/run/postgresql
    chmod 00700 "$PGDATA" || :
    chmod 03775 /var/run/postgresql || :
    find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
    find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
    export HOME=/var/lib/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
        POSTGRES_PASSWORD=$(<"$POSTGRES_PASSWORD_FILE")
    fi
    : "${POSTGRES_USER:=postgres}" "${POSTGRES_PASSWORD:=}" "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
    : "${POSTGRES_DB:=$POSTGRES_USER}" "${POSTGRES_INITDB_ARGS:=}"
    # Exported with their defaults, as in the official image, for the /docker-entrypoint-initdb.d scripts.
    export POSTGRES_USER POSTGRES_PASSWORD POSTGRES_DB POSTGRES_HOST_AUTH_METHOD POSTGRES_INITDB_ARGS
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
        echo 'error: the database is uninitialized and POSTGRES_PASSWORD is not set' >&2
        echo '       (set it, or POSTGRES_HOST_AUTH_METHOD=trust to allow every connection without one)' >&2
        exit 1
    fi

    # initdb's own default authentication is trust for local and loopback connections, as in the
    # official image; the password guards every other host (below). C.UTF-8 is glibc's built-in locale.
    # The password reaches initdb through a pipe, never a file or the command line. The single-quoted
    # parts are expanded by the eval, which splits POSTGRES_INITDB_ARGS as the official image does.
    # shellcheck disable=SC2016
    initdb_args='--username="$POSTGRES_USER" --encoding=UTF8 --locale=C.UTF-8'
    # shellcheck disable=SC2016
    if [ -n "$POSTGRES_PASSWORD" ]; then
        initdb_args+=' --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD")'
    fi
    eval "initdb $initdb_args $POSTGRES_INITDB_ARGS"
    printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"

    # A temporary server on the unix socket only, so that nothing outside sees the database before
    # it is set up (and a TCP healthcheck stays unhealthy until the real server runs).
    export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
    PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
    psql_run() {
        psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc "$@"
    }
    psql_run --dbname postgres --set db="$POSTGRES_DB" <<'SQL'
SELECT format('CREATE DATABASE %I', :'db') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh)
                # shellcheck disable=SC1090
                if [ -x "$f" ]; then echo "running $f"; "$f"; else echo "sourcing $f"; . "$f"; fi ;;
            *.sql) echo "running $f"; psql_run --dbname "$POSTGRES_DB" -f "$f" ;;
            *.sql.gz) echo "running $f"; gunzip -c "$f" | psql_run --dbname "$POSTGRES_DB" ;;
            *) if [ -e "$f" ]; then echo "ignoring $f"; fi ;;
        esac
    done
    PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -m fast -w stop
    unset PGPASSWORD
    echo 'PostgreSQL init process complete; ready for start up.'
fi

exec "$@"
