#!/usr/bin/env bash
# The demo's seeder (compose profile `demo`): once every service is healthy, creates
# $SEED_COUNT new customers and products in the ERP simulator through its public contract and
# then edits one customer, so the sync can be watched happening (Grafana, `parley top`, the
# simulators' GET /_admin/records). Creates carry Idempotency-Keys, so running it twice within
# a day creates nothing new.
#
# Environment: CUSTOMERP_URL, CUSTOMERP_API_KEY, SEED_COUNT (default 5).
set -euo pipefail
erp=${CUSTOMERP_URL:?}
key=${CUSTOMERP_API_KEY:?}
count=${SEED_COUNT:-5}
post() { # path idempotency-key json -> body
  curl -fsS -X POST -H "X-Api-Key: $key" -H 'content-type: application/json' -H "Idempotency-Key: $2" --data-binary "$3" "$erp$1"
}
first=""
for n in $(seq 1 "$count"); do
  body=$(post /customers "demo-seeder-customer-$n" \
    "{\"customerType\":\"COMPANY\",\"name\":\"Demo Seeder $n AS\",\"email\":\"demo-seeder-$n@example.no\"}")
  id=$(printf '%s' "$body" | sed -n 's/.*"id" *: *"\([^"]*\)".*/\1/p')
  [ -z "$first" ] && first=$id
  post /products "demo-seeder-product-$n" \
    "{\"itemNo\":\"DEMO-SEED-$n\",\"description\":\"Demovare $n\",\"unitCode\":\"EA\",\"salesPrice\":$((100 * n)).5,\"vatPercent\":25,\"itemType\":\"STOCK\"}" >/dev/null
  echo "seeder: customer $id and product DEMO-SEED-$n created in the ERP"
done
sleep 10
if [ -n "$first" ]; then
  curl -fsS -X PUT -H "X-Api-Key: $key" -H 'content-type: application/json' \
    --data-binary '{"name":"Demo Seeder 1 AS (endret)"}' "$erp/customers/$first" >/dev/null
  echo "seeder: customer $first renamed in the ERP"
fi
