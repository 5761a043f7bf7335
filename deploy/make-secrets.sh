#!/bin/sh
# Creates the secrets deploy/compose.yaml mounts, in deploy/secrets/, unless they exist:
#
#   database-url               postgres://packrun:<password>@postgres:5432/packrun
#   postgres-password          random; PostgreSQL's own password for the packrun user
#   secrets-key                base64 of 32 random bytes: PACKRUN_SECRETS_KEY of every executor
#   evidence-signing-key.pem   Ed25519 private key (PKCS#8) that signs attestations
#
# Existing files are kept: re-running never rotates a key (docs/operations.md explains how to).
# The directory is private to you (0700); the files are world-readable inside it (0644) because
# compose bind-mounts them into containers that run as uid 1000.
set -eu

dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)/secrets
command -v openssl >/dev/null || {
  echo "make-secrets: openssl is needed (Debian package openssl)" >&2
  exit 1
}
umask 022
mkdir -p "${dir}"
chmod 0700 "${dir}"

create() {
  if [ -e "${dir}/$1" ]; then
    echo "kept     ${dir}/$1"
  else
    "$2" >"${dir}/$1.tmp"
    mv "${dir}/$1.tmp" "${dir}/$1"
    echo "created  ${dir}/$1"
  fi
}

postgres_password() { openssl rand -hex 24; }
database_url() { printf 'postgres://packrun:%s@postgres:5432/packrun\n' "$(cat "${dir}/postgres-password")"; }
secrets_key() { openssl rand -base64 32; }
signing_key() { openssl genpkey -algorithm ed25519; }

create postgres-password postgres_password
create database-url database_url
create secrets-key secrets_key
create evidence-signing-key.pem signing_key
