#!/usr/bin/env bash
# Creates Parley's virtual host, topology and per-service users on a running RabbitMQ through
# the management API, as the administrator. Idempotent: compose runs it on every `up`
# (service rabbitmq-init) before any Parley service starts.
#
#   definitions.json  the topology (exchanges, queues, bindings) generated from
#                     ParleyTopology.standard, imported into the vhost; created here, by the
#                     administrator, so no service needs the rights that creating a queue
#                     with a dead-letter exchange takes (read on it, write on the exchange)
#   permissions.tsv   per service: its user and configure/write/read regular expressions
#                     (from BrokerAccess; see docs/deployment.md)
#
# Each service's password is read from its AMQP URL secret ($PARLEY_SECRETS_DIR/<service>-amqp-url,
# amqp://user:password@host:5672/vhost), the same file the service reads through
# PARLEY_AMQP_URL_FILE, so a password lives in one place. The user name in the URL must be the
# one permissions.tsv names.
#
# Environment: RABBITMQ_MANAGEMENT_URL (default http://rabbitmq:15672), RABBITMQ_ADMIN_USER
# (default parley), RABBITMQ_ADMIN_PASSWORD or RABBITMQ_ADMIN_PASSWORD_FILE, PARLEY_AMQP_VHOST
# (default parley), PARLEY_SECRETS_DIR (default /run/secrets).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
api=${RABBITMQ_MANAGEMENT_URL:-http://rabbitmq:15672}/api
admin=${RABBITMQ_ADMIN_USER:-parley}
if [ -n "${RABBITMQ_ADMIN_PASSWORD_FILE:-}" ]; then admin_pass=$(cat "$RABBITMQ_ADMIN_PASSWORD_FILE"); else admin_pass=${RABBITMQ_ADMIN_PASSWORD:?set RABBITMQ_ADMIN_PASSWORD or RABBITMQ_ADMIN_PASSWORD_FILE}; fi
vhost=${PARLEY_AMQP_VHOST:-parley}
secrets=${PARLEY_SECRETS_DIR:-/run/secrets}

log() { printf 'rabbitmq-init: %s\n' "$*" >&2; }
json_string() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
urldecode() { local s=${1//+/ }; printf '%b' "${s//%/\\x}"; }
call() { # method path [body]
  if [ $# -ge 3 ]; then
    curl -fsS -o /dev/null -u "$admin:$admin_pass" -H 'content-type: application/json' -X "$1" --data-binary "$3" "$api$2"
  else
    curl -fsS -o /dev/null -u "$admin:$admin_pass" -X "$1" "$api$2"
  fi
}

for i in $(seq 1 60); do
  curl -fsS -o /dev/null -u "$admin:$admin_pass" "$api/overview" && break
  [ "$i" = 60 ] && { log "management API at $api not reachable"; exit 1; }
  sleep 2
done

call PUT "/vhosts/$vhost" '{}'
call POST "/definitions/$vhost" "@$here/definitions.json"
log "topology imported into vhost $vhost"

while IFS=$'\t' read -r service user configure write read; do
  case "$service" in ''|'#'*) continue ;; esac
  file="$secrets/$service-amqp-url"
  [ -r "$file" ] || { log "missing $file (the $service AMQP URL)"; exit 1; }
  url=$(tr -d '\r\n' < "$file")
  userinfo=${url#*://}; userinfo=${userinfo%%@*}
  name=$(urldecode "${userinfo%%:*}"); password=$(urldecode "${userinfo#*:}")
  [ "$name" = "$user" ] || { log "$file names user '$name', expected '$user'"; exit 1; }
  [ -n "$password" ] && [ "$password" != "$userinfo" ] || { log "$file has no password"; exit 1; }
  call PUT "/users/$user" "{\"password\":$(json_string "$password"),\"tags\":\"\"}"
  call PUT "/permissions/$vhost/$user" \
    "{\"configure\":$(json_string "$configure"),\"write\":$(json_string "$write"),\"read\":$(json_string "$read")}"
  log "user $user ($service) ready"
done < "$here/permissions.tsv"
log "done"
