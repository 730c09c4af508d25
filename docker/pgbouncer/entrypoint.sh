#!/bin/sh
# Writes PgBouncer's configuration from the environment, then runs it in the foreground (logging to
# stderr). Transaction pooling: a server connection is lent for one transaction at a time, so many
# function workers share a few PostgreSQL backends (the functions use no server-side prepared
# statement or session state; the migrate job connects to PostgreSQL directly).
#
#   PGBOUNCER_SERVER     host:port of PostgreSQL (default postgres:5432)
#   PGBOUNCER_DATABASE   the database clients ask for and PgBouncer connects to (default audio)
#   PGBOUNCER_USER       the one login role it accepts and logs in as (default audio_app)
#   PGBOUNCER_PASSWORD   that role's password (required)
#   PGBOUNCER_POOL_SIZE  server connections per database and user (default 20)
set -eu
server=${PGBOUNCER_SERVER:-postgres:5432}
database=${PGBOUNCER_DATABASE:-audio}
user=${PGBOUNCER_USER:-audio_app}
password=${PGBOUNCER_PASSWORD:?PGBOUNCER_PASSWORD must be set}
umask 077
cat >/tmp/pgbouncer.ini <<INI
[databases]
$database = host=${server%:*} port=${server##*:} dbname=$database
[pgbouncer]
listen_addr = 0.0.0.0
listen_port = 6432
unix_socket_dir =
auth_type = scram-sha-256
auth_file = /tmp/users.txt
pool_mode = transaction
default_pool_size = ${PGBOUNCER_POOL_SIZE:-20}
max_client_conn = 2000
ignore_startup_parameters = extra_float_digits
INI
printf '"%s" "%s"\n' "$user" "$password" >/tmp/users.txt
exec pgbouncer /tmp/pgbouncer.ini
