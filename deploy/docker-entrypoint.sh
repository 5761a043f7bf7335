#!/bin/sh
# Entrypoint of the packrun image (deploy/Dockerfile): runs one service by its command.
#
#   planner            node services/planner/src/main.ts
#   executor           node services/executor/src/main.ts   (PACKRUN_EXECUTOR_ROLE picks the role)
#   evidence           node services/evidence/src/main.ts
#   gateway            node services/gateway/src/main.ts    (REST + SSE API, HTTP/1.1)
#   healthcheck ARGS   node deploy/grpc-health-check.ts ARGS (grpc.health.v1 Check; exit 0 = SERVING)
#   help               this text
#   anything else      run as a command (e.g. `sh`)
#
# Secrets as files: for DATABASE_URL, REDIS_URL and every PACKRUN_* variable, NAME_FILE=/path sets
# NAME to the file's content (trailing newlines dropped), so compose and Kubernetes secrets can be
# mounted as files instead of being put in the environment of the orchestrator. Setting both NAME
# and NAME_FILE is an error. (PACKRUN_EVIDENCE_SIGNING_KEY and PACKRUN_EVIDENCE_VERIFICATION_KEYS
# are paths already: point them at the mounted PEM files directly.) PACKRUN_AUTH_JWKS_FILE is a
# setting of its own (the gateway's JWK Set file), not the file form of a PACKRUN_AUTH_JWKS, so it
# is passed through unchanged.
set -eu

app=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)

fail() {
  printf 'packrun: %s\n' "$*" >&2
  exit 2
}

# Settings whose own name ends in _FILE (paths the service reads itself): never indirections.
file_settings='PACKRUN_AUTH_JWKS_FILE PACKRUN_APPROVER_KEYS_FILE'

load_file_variables() {
  for name in $(env | sed -n 's/^\(DATABASE_URL\|REDIS_URL\|PACKRUN_[A-Z0-9_]*\)_FILE=.*$/\1/p'); do
    case " ${file_settings} " in
      *" ${name}_FILE "*) continue ;;
    esac
    file=$(printenv "${name}_FILE")
    if [ -n "$(printenv "${name}" || true)" ]; then
      fail "both ${name} and ${name}_FILE are set; set one"
    fi
    [ -r "${file}" ] || fail "${name}_FILE: cannot read ${file}"
    value=$(cat -- "${file}")
    export "${name}=${value}"
    unset "${name}_FILE"
  done
}

usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
}

command=${1:-help}
case "${command}" in
  planner)
    shift
    load_file_variables
    cd "${app}"
    exec node services/planner/src/main.ts "$@"
    ;;
  executor)
    shift
    load_file_variables
    cd "${app}"
    exec node services/executor/src/main.ts "$@"
    ;;
  evidence)
    shift
    load_file_variables
    cd "${app}"
    exec node services/evidence/src/main.ts "$@"
    ;;
  gateway)
    shift
    load_file_variables
    cd "${app}"
    exec node services/gateway/src/main.ts "$@"
    ;;
  healthcheck)
    shift
    cd "${app}"
    exec node deploy/grpc-health-check.ts "$@"
    ;;
  help | --help | -h)
    usage
    ;;
  *)
    exec "$@"
    ;;
esac
