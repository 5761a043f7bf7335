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
#   internal-ca.pem            the internal CA of the services' mutual TLS (PACKRUN_TLS_CA)
#   internal-ca-key.pem        its private key (0600; never mounted): issue more certificates
#   <service>.pem              one certificate per service identity (CN gateway, planner,
#   <service>-key.pem          executor, evidence; PACKRUN_TLS_CERT, PACKRUN_TLS_KEY), valid for
#                              its compose and Kubernetes names, localhost and 127.0.0.1
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

# The internal CA (ECDSA P-256, 10 years). Its key issues the service certificates below.
internal_ca() {
  cert="${dir}/internal-ca.pem"
  key="${dir}/internal-ca-key.pem"
  if [ -e "${cert}" ] && [ -e "${key}" ]; then
    echo "kept     ${cert}"
    return
  fi
  if [ -e "${cert}" ] || [ -e "${key}" ]; then
    echo "make-secrets: ${cert} and ${key} are one CA, but only one exists;" \
      "remove it to create a new CA (and new service certificates)" >&2
    exit 1
  fi
  (
    umask 077
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "${key}.tmp" -out "${cert}.tmp" -days 3650 -sha256 \
      -subj "/O=packrun/CN=packrun internal CA" \
      -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  )
  chmod 0644 "${cert}.tmp"
  mv "${key}.tmp" "${key}"
  mv "${cert}.tmp" "${cert}"
  echo "created  ${cert}"
}

# A service's certificate (CN = its identity) and key, signed by the internal CA; the names are
# how compose and Kubernetes (namespace packrun) reach it, then loopback for health checks.
service_certificate() {
  name=$1
  shift
  cert="${dir}/${name}.pem"
  key="${dir}/${name}-key.pem"
  if [ -e "${cert}" ] && [ -e "${key}" ]; then
    echo "kept     ${cert}"
    return
  fi
  sans="DNS:localhost,IP:127.0.0.1"
  for host in "${name}" "$@"; do
    sans="${sans},DNS:${host},DNS:${host}.packrun.svc,DNS:${host}.packrun.svc.cluster.local"
  done
  csr="${dir}/${name}.csr.tmp"
  ext="${dir}/${name}.ext.tmp"
  trap 'rm -f "${csr}" "${ext}"' EXIT
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' \
    "${sans}" >"${ext}"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "${key}.tmp" -out "${csr}" -subj "/O=packrun/CN=${name}" 2>/dev/null
  openssl x509 -req -in "${csr}" -CA "${dir}/internal-ca.pem" -CAkey "${dir}/internal-ca-key.pem" \
    -set_serial "0x$(openssl rand -hex 16)" -days 825 -sha256 -extfile "${ext}" \
    -out "${cert}.tmp" 2>/dev/null
  rm -f "${csr}" "${ext}"
  # Readable by the containers' uid 1000, like the other mounted secrets (the directory is 0700).
  chmod 0644 "${key}.tmp" "${cert}.tmp"
  mv "${key}.tmp" "${key}"
  mv "${cert}.tmp" "${cert}"
  echo "created  ${cert}"
}

create postgres-password postgres_password
create database-url database_url
create secrets-key secrets_key
create evidence-signing-key.pem signing_key
token_keys
internal_ca
service_certificate gateway
service_certificate planner
service_certificate executor executor-api
service_certificate evidence
