#!/bin/sh
# One-shot job of the compose stack (service `temporal-schema`, image temporalio/admin-tools):
# creates Temporal's two PostgreSQL databases when missing and brings both schemas to the
# version this admin-tools release ships. Every step is idempotent, so the job runs on every
# `docker compose up`: after TEMPORAL_VERSION is raised, it migrates the schema before the
# new server starts. Connection settings come from SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER
# and SQL_PASSWORD, which temporal-sql-tool reads itself.
set -eu

: "${SQL_HOST:?SQL_HOST is required}"
: "${SQL_USER:?SQL_USER is required}"
: "${SQL_PASSWORD:?SQL_PASSWORD is required}"

schemas=/etc/temporal/schema/postgresql/v12

setup() {
    database=$1
    versioned=$2
    echo "temporal-schema: database ${database}"
    temporal-sql-tool --db "${database}" create
    temporal-sql-tool --db "${database}" setup-schema -v 0.0
    temporal-sql-tool --db "${database}" update-schema -d "${schemas}/${versioned}/versioned"
}

setup temporal temporal
setup temporal_visibility visibility
echo "temporal-schema: both schemas are current"
