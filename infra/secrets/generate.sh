#!/usr/bin/env bash
# Writes the secret files docker-compose.yml mounts (./secrets, never committed): per service
# its AMQP URL and database URL with a random password, and the two administrator passwords.
# Existing files are kept, so running it again changes nothing.
#
# The directory is mode 700 (no other user on the host can reach the files); the files are 644
# because compose bind-mounts file secrets as they are (it ignores uid/gid/mode outside swarm)
# and the containers read them as their own unprivileged users (parley 10001, postgres and
# rabbitmq 999, grafana 472).
#
#   infra/secrets/generate.sh [directory]      (default: ./secrets)
set -euo pipefail
dir=${1:-secrets}
mkdir -p "$dir"; chmod 700 "$dir"
random() { head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24; }
write() { # file content
  if [ -s "$dir/$1" ]; then return 0; fi
  (umask 022; printf '%s\n' "$2" > "$dir/$1"); echo "wrote $dir/$1"
}
write rabbitmq-admin-password "$(random)"
write postgres-admin-password "$(random)"
write grafana-admin-password "$(random)"
for service in mapping-service link-service customerp-adapter customwebshop-adapter powerofficego-adapter; do
  user=${service//-/_}
  write "$service-amqp-url" "amqp://$user:$(random)@rabbitmq:5672/parley"
done
write link-service-database-url "postgres://link_service:$(random)@postgres:5432/parley"
for system in customerp customwebshop powerofficego; do
  write "$system-adapter-database-url" "postgres://${system}_adapter:$(random)@postgres:5432/${system}_adapter"
done
