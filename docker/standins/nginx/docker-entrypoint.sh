#!/bin/sh
# Entrypoint of the nginx:1.28-alpine stand-in, as the official one: the /docker-entrypoint.d/
# scripts run (*.sh) or are sourced (*.envsh) in version order, only when the command is nginx.
set -e

entrypoint_log() {
    if [ -z "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ]; then
        echo "$@"
    fi
}

if [ "$1" = nginx ] || [ "$1" = nginx-debug ]; then
    if find /docker-entrypoint.d/ -mindepth 1 -maxdepth 1 -type f -print -quit 2>/dev/null | read -r _; then
        entrypoint_log "$0: /docker-entrypoint.d/ is not empty, will attempt to perform configuration"
        entrypoint_log "$0: Looking for shell scripts in /docker-entrypoint.d/"
        # A file list rather than a pipe into the loop, so that what an .envsh exports reaches nginx.
        scripts=$(find /docker-entrypoint.d/ -follow -type f -print | sort -V)
        for f in $scripts; do
            case "$f" in
                *.envsh|*.sh)
                    if [ ! -x "$f" ]; then
                        entrypoint_log "$0: Ignoring $f, not executable"
                    elif [ "${f%.envsh}" != "$f" ]; then
                        entrypoint_log "$0: Sourcing $f"
                        # shellcheck disable=SC1090
                        . "$f"
                    else
                        entrypoint_log "$0: Launching $f"
                        "$f"
                    fi
                    ;;
                *) entrypoint_log "$0: Ignoring $f" ;;
            esac
        done
        entrypoint_log "$0: Configuration complete; ready for start up"
    else
        entrypoint_log "$0: No files found in /docker-entrypoint.d/, skipping configuration"
    fi
fi

exec "$@"
