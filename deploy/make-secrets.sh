#!/bin/sh
# Creates the secrets deploy/compose.yaml mounts, in deploy/secrets/, unless they exist:
#
#   database-url               postgres://packrun:<password>@postgres:5432/packrun
#   postgres-password          random; PostgreSQL's own password for the packrun user
#   secrets-key                base64 of 32 random bytes: PACKRUN_SECRETS_KEY of every executor
#   evidence-signing-key.pem   Ed25519 private key (PKCS#8) that signs attestations
#   token-jwks.json            JWK Set with the public ES256 key the gateway trusts for bearer
#                              tokens (PACKRUN_AUTH_JWKS_FILE)
#   token-signing-key.jwk      its private half (0600; never mounted): mint development tokens
#                              with `packrun token --key-file deploy/secrets/token-signing-key.jwk`
#
# The token key pair is a development issuer: in production the gateway trusts your identity
# provider's keys instead (docs/operations.md, "Authentication").
#
# Existing files are kept: re-running never rotates a key (docs/operations.md explains how to).
# The directory is private to you (0700); the files are world-readable inside it (0644) because
# compose bind-mounts them into containers that run as uid 1000. Needs only openssl and POSIX
# tools.
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

# base64url without padding (RFC 7515) of standard input.
base64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# Bytes [offset, offset + count) of a file.
bytes() { dd if="$1" bs=1 skip="$2" count="$3" 2>/dev/null; }

# An ES256 (ECDSA P-256) key pair as JWKs: the private JWK and the public JWK Set, written
# together (one without the other would not match).
token_keys() {
  private="${dir}/token-signing-key.jwk"
  public="${dir}/token-jwks.json"
  if [ -e "${private}" ] && [ -e "${public}" ]; then
    echo "kept     ${private}"
    echo "kept     ${public}"
    return
  fi
  if [ -e "${private}" ] || [ -e "${public}" ]; then
    echo "make-secrets: ${private} and ${public} are one key pair, but only one exists;" \
      "remove it to create a new pair" >&2
    exit 1
  fi
  der="${dir}/token-key.der.tmp"
  trap 'rm -f "${der}"' EXIT
  # SEC1 ECPrivateKey, DER: a fixed layout for P-256 with a named curve (121 bytes):
  # 30 77 02 01 01 04 20 <d: 32> a0 0a <OID prime256v1: 10> a1 44 03 42 00 04 <x: 32> <y: 32>
  openssl ecparam -name prime256v1 -genkey -noout | openssl ec -outform DER -out "${der}" 2>/dev/null
  layout=$(od -An -tx1 -v "${der}" | tr -d ' \n' | sed 's/^\(.\{14\}\).\{64\}\(.\{36\}\).*$/\1 \2/')
  if [ "$(wc -c <"${der}" | tr -d ' ')" != 121 ] ||
    [ "${layout}" != "30770201010420 a00a06082a8648ce3d030107a14403420004" ]; then
    echo "make-secrets: unexpected EC key encoding from openssl" >&2
    exit 1
  fi
  d=$(bytes "${der}" 7 32 | base64url)
  x=$(bytes "${der}" 57 32 | base64url)
  y=$(bytes "${der}" 89 32 | base64url)
  rm -f "${der}"
  # Key id: the JWK thumbprint (RFC 7638) of the public key.
  kid=$(printf '{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}' "${x}" "${y}" |
    openssl dgst -sha256 -binary | base64url)
  (
    umask 077
    printf '{"kty":"EC","crv":"P-256","x":"%s","y":"%s","d":"%s","kid":"%s","alg":"ES256"}\n' \
      "${x}" "${y}" "${d}" "${kid}" >"${private}.tmp"
  )
  printf '{"keys":[{"kty":"EC","crv":"P-256","x":"%s","y":"%s","kid":"%s","alg":"ES256","use":"sig"}]}\n' \
    "${x}" "${y}" "${kid}" >"${public}.tmp"
  mv "${private}.tmp" "${private}"
  mv "${public}.tmp" "${public}"
  echo "created  ${private}"
  echo "created  ${public}"
}

create postgres-password postgres_password
create database-url database_url
create secrets-key secrets_key
create evidence-signing-key.pem signing_key
token_keys
