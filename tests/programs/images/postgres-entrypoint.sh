#!/bin/sh
# A minimal stand-in for the postgres image's docker-entrypoint.sh: what it does for a container
# that runs as a non-root user (the role's runAsUser 70) with an empty data directory.
#
#   1. initdb as POSTGRES_USER with POSTGRES_PASSWORD (and POSTGRES_INITDB_ARGS) into PGDATA,
#      listen_addresses = '*' (the image's postgresql.conf.sample has it);
#   2. pg_hba.conf as the image leaves it: initdb's trust lines for the local socket and the
#      loopback addresses (the pod's own probes), then "host all all all scram-sha-256" for every
#      other client (the image's POSTGRES_HOST_AUTH_METHOD default on PostgreSQL 14 and later);
#   3. a temporary server on the Unix socket only: CREATE DATABASE POSTGRES_DB unless it is
#      "postgres", then each /docker-entrypoint-initdb.d/*.sql (psql -v ON_ERROR_STOP=1 into
#      POSTGRES_DB) and *.sh (sourced), in name order; stop it;
#   4. exec the command (postgres -c ...), as the image does.
# As root (no runAsUser: the image's USER), it first gives PGDATA and the socket directory to
# postgres and runs itself again as postgres (the image uses su-exec; setpriv here).
# Not emulated: POSTGRES_HOST_AUTH_METHOD other than the default, compressed init files. A data
# directory that exists already is used as it is.
set -eu
: "${POSTGRES_USER:=postgres}"
export POSTGRES_USER

if [ "${1:-}" = postgres ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA"
  chown postgres:postgres /var/run/postgresql
  chmod 0700 "$PGDATA"
  chmod 3777 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --clear-groups "$0" "$@"
fi

if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of arguments, as in the image
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" ${POSTGRES_INITDB_ARGS:-} >/dev/null
  rm -f "$pwfile"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"

  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  db=${POSTGRES_DB:-$POSTGRES_USER}
  if [ "$db" != postgres ]; then
    echo 'CREATE DATABASE :"db";' |
      psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc --dbname postgres --set db="$db" >/dev/null
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sql)
        echo "$0: running $f"
        psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc --dbname "$db" -f "$f" >/dev/null
        ;;
      *.sh)
        echo "$0: sourcing $f"
        # shellcheck disable=SC1090
        . "$f"
        ;;
      *) if [ -e "$f" ]; then echo "$0: ignoring $f"; fi ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "PostgreSQL init process complete; ready for start up."
fi
exec "$@"
