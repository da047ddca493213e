#!/usr/bin/env bash
# Creates one PostgreSQL role and one database per Parley service, as the administrator.
# Idempotent: compose runs it on every `up` (service postgres-init, in the postgres image).
#
#   link-service           role link_service, owns database parley (global entities, links,
#                          outbox; migrated by the service into its public schema)
#   <system>-adapter       role <system>_adapter, owns database <system>_adapter (its feed
#                          positions in schema parley_adapter and its poll lease)
#   mapping-service        no database
#
# A role owns its own database and nothing else: LOGIN, no superuser, no CREATEDB, no
# CREATEROLE; CONNECT on each database is revoked from PUBLIC, so one service cannot even open
# another's database. Owning the database is what the services' migrations need (the migrator
# runs CREATE SCHEMA IF NOT EXISTS, which PostgreSQL checks against CREATE on the database even
# when the schema exists).
#
# Role, password and database come from each service's URL secret
# ($PARLEY_SECRETS_DIR/<service>-database-url, postgres://role:password@host:5432/database), the
# file the service reads through PARLEY_DATABASE_URL_FILE.
#
# Environment: PGHOST, PGPORT, PGUSER (the administrator), PGPASSWORD or PGPASSWORD_FILE,
# PARLEY_SECRETS_DIR (default /run/secrets).
set -euo pipefail
secrets=${PARLEY_SECRETS_DIR:-/run/secrets}
if [ -n "${PGPASSWORD_FILE:-}" ]; then PGPASSWORD=$(cat "$PGPASSWORD_FILE"); export PGPASSWORD; fi
export PGDATABASE=${PGDATABASE:-postgres}
log() { printf 'postgres-init: %s\n' "$*" >&2; }
urldecode() { local s=${1//+/ }; printf '%b' "${s//%/\\x}"; }

for i in $(seq 1 60); do
  psql -qAtc 'select 1' >/dev/null 2>&1 && break
  [ "$i" = 60 ] && { log "PostgreSQL at ${PGHOST:-localhost} not reachable"; exit 1; }
  sleep 2
done

for service in link-service customerp-adapter customwebshop-adapter powerofficego-adapter; do
  file="$secrets/$service-database-url"
  [ -r "$file" ] || { log "missing $file (the $service database URL)"; exit 1; }
  url=$(tr -d '\r\n' < "$file")
  rest=${url#*://}; userinfo=${rest%%@*}; path=${rest#*@}; path=${path#*/}; db=$(urldecode "${path%%\?*}")
  role=$(urldecode "${userinfo%%:*}"); password=$(urldecode "${userinfo#*:}")
  [ -n "$role" ] && [ -n "$db" ] && [ "$password" != "$userinfo" ] || { log "$file is not postgres://role:password@host/database"; exit 1; }
  psql -v ON_ERROR_STOP=1 -q -v role="$role" -v pw="$password" -v db="$db" <<'SQL'
select format('create role %I', :'role') where not exists (select from pg_roles where rolname = :'role') \gexec
select format('alter role %I with login nosuperuser nocreatedb nocreaterole noreplication password %L', :'role', :'pw') \gexec
select format('create database %I owner %I', :'db', :'role') where not exists (select from pg_database where datname = :'db') \gexec
select format('alter database %I owner to %I', :'db', :'role') \gexec
select format('revoke all on database %I from public', :'db') \gexec
SQL
  log "role $role owns database $db ($service)"
done
log "done"
