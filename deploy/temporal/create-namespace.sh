#!/bin/sh
# One-shot job of the compose stack (service `temporal-namespace`, image
# temporalio/admin-tools): once the server answers, makes sure NAMESPACE exists with
# RETENTION (created, or updated when it exists, so a new value takes effect on the next
# `docker compose up`) and has the custom search attributes in SEARCH_ATTRIBUTES (Keyword),
# so workers never race each other registering them.
set -eu

: "${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS is required}"
: "${NAMESPACE:?NAMESPACE is required}"
: "${RETENTION:?RETENTION is required, for example 30d}"
SEARCH_ATTRIBUTES=${SEARCH_ATTRIBUTES:-}
ATTEMPTS=${ATTEMPTS:-60}

# Runs "$@" until it succeeds, ATTEMPTS times at most, a second apart.
retry() {
    tries=0
    until "$@" >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "${tries}" -ge "${ATTEMPTS}" ]; then
            echo "temporal-namespace: gave up after ${tries} attempts: $*" >&2
            "$@"
            return 1
        fi
        sleep 1
    done
}

retry temporal operator cluster health --address "${TEMPORAL_ADDRESS}"

if temporal operator namespace describe --namespace "${NAMESPACE}" \
        --address "${TEMPORAL_ADDRESS}" >/dev/null 2>&1; then
    temporal operator namespace update --namespace "${NAMESPACE}" \
        --retention "${RETENTION}" --address "${TEMPORAL_ADDRESS}"
    echo "temporal-namespace: ${NAMESPACE} exists; retention set to ${RETENTION}"
else
    temporal operator namespace create --namespace "${NAMESPACE}" \
        --retention "${RETENTION}" --description "Backorders" --address "${TEMPORAL_ADDRESS}"
    echo "temporal-namespace: ${NAMESPACE} created with retention ${RETENTION}"
fi

# A new namespace reaches the frontend's cache within seconds; wait until it serves it.
retry temporal workflow count --namespace "${NAMESPACE}" --address "${TEMPORAL_ADDRESS}"

existing=$(temporal operator search-attribute list --namespace "${NAMESPACE}" \
    --address "${TEMPORAL_ADDRESS}")
for name in ${SEARCH_ATTRIBUTES}; do
    if printf '%s\n' "${existing}" | grep -qw -- "${name}"; then
        continue
    fi
    temporal operator search-attribute create --namespace "${NAMESPACE}" \
        --name "${name}" --type Keyword --address "${TEMPORAL_ADDRESS}"
    echo "temporal-namespace: search attribute ${name} added"
done
echo "temporal-namespace: ${NAMESPACE} is ready"
