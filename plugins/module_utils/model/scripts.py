# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the day-2 Jobs run. Each ends with its report, one line ``DIFY_REPORT {json}`` that the
runner parses (records.parse_report); names the run chose are given to the Jobs, never read back."""

from __future__ import annotations

# pg_dump of Dify's and the plugin daemon's databases (custom format: compressed, restorable table
# by table) to the volume dify-backups, under the name the run chose ($BACKUP_NAME, recorded by the
# role). Each dump is written under a partial name and renamed when complete, the .dify.dump last:
# a backup exists once its .dify.dump does, so one cut short is never taken for a whole one and
# never counts toward $KEEP. Keeps the newest $KEEP complete backups and says which it removed.
BACKUP = """\
base="/backups/$BACKUP_NAME"
# Partial files of an earlier attempt (its Job was replaced) are never a backup.
rm -f /backups/dify_*.partial
trap 'rm -f "$base.dify.dump.partial" "$base.dify_plugin.dump.partial"' EXIT
pg_dump -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USERNAME" -d "$DB_DATABASE" -Fc -f "$base.dify.dump.partial"
pg_dump -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USERNAME" -d "$DB_PLUGIN_DATABASE" -Fc -f "$base.dify_plugin.dump.partial"
mv "$base.dify_plugin.dump.partial" "$base.dify_plugin.dump"
mv "$base.dify.dump.partial" "$base.dify.dump"
echo "backup $BACKUP_NAME complete"
# A plugin dump whose backup never completed (cut short between the two renames) goes.
for plugin in /backups/dify_*.dify_plugin.dump; do
  if [ -e "$plugin" ] && [ ! -e "${plugin%.dify_plugin.dump}.dify.dump" ]; then rm -f "$plugin"; fi
done
# Keep the newest $KEEP complete backups.
removed=""
for old in $(ls -1t /backups/dify_*.dify.dump | tail -n "+$((KEEP + 1))"); do
  rm -f "$old" "${old%.dify.dump}.dify_plugin.dump"
  name=$(basename "${old%.dify.dump}")
  echo "removed $name"
  removed="$removed${removed:+, }\\"$name\\""
done
echo "DIFY_REPORT {\\"backup\\": \\"$BACKUP_NAME\\", \\"removed\\": [$removed]}"
"""

# Weaviate's volume (mounted read-only at /weaviate, Weaviate stopped) as one archive in
# dify-backups/weaviate, under the name the run chose ($NAME: the Weaviate version it holds and the
# time). Written under a temporary name first, so a copy cut short is never taken for a whole one;
# keeps the newest $KEEP.
WEAVIATE_BACKUP = """\
partial="/backups/weaviate/$NAME.tar.gz.partial"
mkdir -p /backups/weaviate
rm -f /backups/weaviate/*.partial
trap 'rm -f "$partial"' EXIT
tar -C /weaviate -czf "$partial" .
mv "$partial" "/backups/weaviate/$NAME.tar.gz"
echo "copy $NAME complete"
removed=""
for old in $(ls -1t /backups/weaviate/weaviate_*.tar.gz | tail -n "+$((KEEP + 1))"); do
  rm -f "$old"
  name=$(basename "${old%.tar.gz}")
  echo "removed $name"
  removed="$removed${removed:+, }\\"$name\\""
done
echo "DIFY_REPORT {\\"copy\\": \\"$NAME\\", \\"removed\\": [$removed]}"
"""

# Both databases back from a backup. First both dumps are checked (with CHECK_ONLY=1 nothing else
# happens: the role checks before it stops anything). Each database is then restored into a clean
# schema in one transaction: what a newer release added goes too (pg_restore --clean drops only
# what is in the dump), and if anything fails the database is as it was.
RESTORE = """\
base="/backups/$BACKUP"
for db in dify dify_plugin; do
  if [ ! -f "$base.$db.dump" ]; then
    echo "no backup $BACKUP.$db.dump; available:"; ls -1t /backups; exit 2
  fi
  pg_restore --list "$base.$db.dump" >/dev/null
done
if [ "${CHECK_ONLY:-}" = 1 ]; then
  echo "DIFY_REPORT {\\"checked\\": \\"$BACKUP\\"}"
  exit 0
fi
restore() { # restore DATABASE DUMP, all or nothing: without COMMIT (or after an error) nothing changed
  { echo 'BEGIN;'
    echo 'DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;'
    if pg_restore --no-owner --no-privileges -f - "$2"; then
      echo 'COMMIT;'
    else
      echo "DO \\$\\$ BEGIN RAISE EXCEPTION 'pg_restore could not read $2'; END \\$\\$;"
    fi
  } | psql -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USERNAME" -d "$1" -v ON_ERROR_STOP=1 -q
}
restore "$DB_DATABASE" "$base.dify.dump"
restore "$DB_PLUGIN_DATABASE" "$base.dify_plugin.dump"
echo "DIFY_REPORT {\\"restored\\": \\"$BACKUP\\"}"
"""

# ALTER USER with the old password (PGPASSWORD, still in the Secret); psql variables (:"user",
# :'new') quote the values, and the new password is never on a command line. Idempotent: when the
# new password works already (a run cut short after ALTER USER), there is nothing to change.
ROTATE_DB_PASSWORD = """\
if PGPASSWORD="$NEW_PASSWORD" psql -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USERNAME" -d "$DB_DATABASE" -tAc 'select 1' \\
    >/dev/null 2>&1; then
  echo "the password of $DB_USERNAME is the new one already"
  echo 'DIFY_REPORT {"rotated": "already"}'
  exit 0
fi
echo "ALTER USER :\\"user\\" PASSWORD :'new';" |
  psql -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USERNAME" -d "$DB_DATABASE" -v ON_ERROR_STOP=1 \\
    -v user="$DB_USERNAME" -v new="$NEW_PASSWORD"
echo "password of $DB_USERNAME changed"
echo 'DIFY_REPORT {"rotated": "now"}'
"""

# The status probe, from a pod like the api's: tables, the Alembic revision, the plugin daemon.
STATUS_PROBE = """\
import http.client, json, os, urllib.parse
import psycopg2
out = {}
try:
    db = psycopg2.connect(host=os.environ["DB_HOST"], port=os.environ["DB_PORT"], user=os.environ["DB_USERNAME"],
                          password=os.environ["DB_PASSWORD"], dbname=os.environ["DB_DATABASE"], connect_timeout=10)
    cur = db.cursor()
    cur.execute("select count(*) from pg_tables where schemaname = 'public'")
    out["tables"] = cur.fetchone()[0]
    cur.execute("select version_num from alembic_version")
    row = cur.fetchone()
    out["alembic_revision"] = row[0] if row else None
except Exception as exc:
    out["database_error"] = str(exc).strip().splitlines()[0]
try:
    url = urllib.parse.urlsplit(os.environ["PLUGIN_DAEMON_URL"])
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=10)
    conn.request("GET", url.path.rstrip("/") + "/health/check")
    resp = conn.getresponse()
    out["plugin_daemon"] = {"status": resp.status, "body": resp.read(200).decode(errors="replace")}
except Exception as exc:
    out["plugin_daemon"] = {"error": str(exc)}
print("DIFY_REPORT " + json.dumps(out))
"""

# Adopting: both databases of the source, dumped and restored into the new PostgreSQL (the source
# is only read). --clean --if-exists: a forced second copy replaces what the first one restored.
ADOPT_DB = """\
base="$WORK/adopt_${SOURCE_NAMESPACE}"
# An external source's version is only known here: pg_dump refuses a newer server, say what to do.
server=$(PGPASSWORD="$SOURCE_PASSWORD" psql -h "$SOURCE_HOST" -p "$SOURCE_PORT" -U "$SOURCE_USER" -d "$SOURCE_DB" \\
  -tAc 'show server_version_num')
client=$(pg_dump --version | sed 's/^[^0-9]*\\([0-9]*\\).*/\\1/')
if [ "$((server / 10000))" -gt "$client" ]; then
  echo "REFUSED: the source runs PostgreSQL $((server / 10000)), this image's pg_dump is $client:" \\
    "set dify_postgres_image to a PostgreSQL $((server / 10000)) image" >&2
  exit 3
fi
PGPASSWORD="$SOURCE_PASSWORD" pg_dump -h "$SOURCE_HOST" -p "$SOURCE_PORT" -U "$SOURCE_USER" -d "$SOURCE_DB" -Fc \\
  -f "$base.dify.dump"
PGPASSWORD="$SOURCE_PASSWORD" pg_dump -h "$SOURCE_HOST" -p "$SOURCE_PORT" -U "$SOURCE_USER" \\
  -d "$SOURCE_PLUGIN_DB" -Fc -f "$base.dify_plugin.dump"
pg_restore -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USERNAME" -d "$DB_DATABASE" --clean --if-exists --no-owner \\
  --no-privileges "$base.dify.dump"
pg_restore -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USERNAME" -d "$DB_PLUGIN_DATABASE" --clean --if-exists --no-owner \\
  --no-privileges "$base.dify_plugin.dump"
echo "copied $SOURCE_DB -> $DB_DATABASE, $SOURCE_PLUGIN_DB -> $DB_PLUGIN_DATABASE"
echo 'DIFY_REPORT {"copied": "databases"}'
"""

# Adopting a volume: the receiver (in the new namespace) unpacks one tar stream into its volume,
# owners and modes kept; the sender (in the source namespace, read-only) streams the volume to it.
ADOPT_RECEIVE = """\
import json, os, socket, tarfile
server = socket.create_server(("", 8000))
server.settimeout(float(os.environ.get("ADOPT_TIMEOUT", "3600")))
conn, _peer = server.accept()
count = 0
with conn, conn.makefile("rb") as stream, tarfile.open(fileobj=stream, mode="r|") as archive:
    keep = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}
    for member in archive:
        archive.extract(member, "/target", numeric_owner=True, **keep)
        count += 1
print(f"received {count} entries")
print("DIFY_REPORT " + json.dumps({"received": count}))
"""

ADOPT_SEND = """\
import json, os, socket, tarfile, time
deadline = time.monotonic() + float(os.environ.get("ADOPT_TIMEOUT", "3600"))
while True:
    try:
        sock = socket.create_connection((os.environ["RECEIVER"], 8000), timeout=30)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(2)
count = 0
with sock, sock.makefile("wb") as stream, tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as archive:
    for entry in sorted(os.listdir("/source")):
        archive.add(os.path.join("/source", entry), arcname=entry)
        count += 1
print(f"sent {count} entries")
print("DIFY_REPORT " + json.dumps({"sent": count}))
"""

# A release's one-off upgrade step ($STEP: its catalog name), the command after the script's name
# ("$@"): its output is kept whole, and an event after which it exited 0 but must run again
# ($FAILS_ON, a grep -E alternation of the catalog's fails_on) fails the Job.
UPGRADE_STEP = """\
out=$(mktemp)
if ! "$@" >"$out" 2>&1; then cat "$out"; exit 1; fi
cat "$out"
if [ -n "${FAILS_ON:-}" ] && grep -Eq "\\"event\\": *\\"($FAILS_ON)\\"" "$out"; then
  events=$(grep -Eo "$FAILS_ON" "$out" | sort | uniq -c | tr -s ' \\n' ' ')
  echo "$STEP reported events after which it must run again:$events"
  echo "DIFY_REPORT {\\"step\\": \\"$STEP\\", \\"complete\\": false}"
  exit 4
fi
echo "DIFY_REPORT {\\"step\\": \\"$STEP\\", \\"complete\\": true}"
"""
