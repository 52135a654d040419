#!/bin/sh
# docker compose's one-shot `init` service: creates the database directory
# every other service shares (on the `balsam` volume), pointed at the compose
# `mongo` and `redis` servers. A directory that exists is left alone, so
# `docker compose up` can run again.
set -eu
: "${BALSAM_DB_PATH:?}" "${MONGODB_URL:?}" "${REDIS_URL:?}"
if [ -f "$BALSAM_DB_PATH/settings.json" ]; then
  echo "database $BALSAM_DB_PATH exists"
  exit 0
fi
exec balsam init "$BALSAM_DB_PATH" --mongo-url "$MONGODB_URL" --redis-url "$REDIS_URL"
