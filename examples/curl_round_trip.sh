#!/usr/bin/env bash
# One token round trip with curl: a token from the password grant, then GET /users/me.
# Usage: GATEHOUSE_URL=http://127.0.0.1:8000 bash curl_round_trip.sh alice  (password on stdin)
# Extra curl options may be given in CURL_OPTS, e.g. CURL_OPTS=--http2.
set -euo pipefail
base=${GATEHOUSE_URL:-http://127.0.0.1:8000}
read -r -s password
token=$(curl -sS --fail-with-body ${CURL_OPTS:-} "$base/oauth/token" \
  --data-urlencode grant_type=password \
  --data-urlencode "username=$1" \
  --data-urlencode "password=$password" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
curl -sS --fail-with-body ${CURL_OPTS:-} "$base/users/me" -H "Authorization: Bearer $token"
