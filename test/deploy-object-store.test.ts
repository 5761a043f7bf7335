/**
 * The object storage setting of the deploy manifests: the compose overlay and the Kustomize
 * component configure the evidence service for an S3-compatible bucket that its configuration
 * loader accepts, with the credentials from secrets (files or Secret keys), never inline.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { Ajv } from "ajv";
import { Secret } from "kubernetes-models/v1/Secret";
import { describe, test } from "vitest";
import { parse as parseYaml } from "yaml";
import {
  loadEvidenceConfig,
  objectStoreOptions,
} from "../services/evidence/src/evidence-config.ts";

const root = path.resolve(import.meta.dirname, "..");
const pathSettings = new Set(["PACKRUN_AUTH_JWKS_FILE", "PACKRUN_APPROVER_KEYS_FILE"]);
const deploy = path.join(root, "deploy");
const read = (file: string) => readFileSync(file, "utf8");

interface ComposeService {
  environment?: Record<string, string>;
  secrets?: string[];
}
interface Compose {
  services: Record<string, ComposeService>;
  secrets?: Record<string, { file: string }>;
}

const base = parseYaml(read(path.join(deploy, "compose.yaml"))) as Compose;
const overlay = parseYaml(read(path.join(deploy, "compose.object-store.yaml"))) as Compose;

describe("compose object store overlay", () => {
  test("is valid against the Compose Specification schema", () => {
    const schema = JSON.parse(
      read(path.join(root, "node_modules/dclint/schemas/compose.schema.json")),
    ) as Record<string, unknown>;
    delete schema.$schema;
    const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
    assert.ok(validate(overlay), JSON.stringify(validate.errors));
  });

  test("the merged evidence environment loads, with the credentials read from secret files", () => {
    const service = overlay.services.evidence;
    assert.ok(service?.environment);
    const environment = { ...base.services.evidence?.environment, ...service.environment };
    const secretValues: Record<string, string> = {
      database_url: "postgres://packrun:secret@postgres:5432/packrun",
      s3_access_key_id: "AKIDEXAMPLE",
      s3_secret_access_key: "wJalrXUtnFEMI/K7MDENG",
    };
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(environment)) {
      const secret = /^\/run\/secrets\/([a-z0-9_]+)$/.exec(value)?.[1];
      // As the image's entrypoint: settings whose own name ends in _FILE are paths, not
      // indirections (deploy/docker-entrypoint.sh, file_settings).
      if (!name.endsWith("_FILE") || secret === undefined || pathSettings.has(name)) {
        env[name] = value;
        continue;
      }
      assert.ok(service.secrets?.includes(secret), `the overlay mounts ${secret}`);
      const declared = overlay.secrets?.[secret] ?? base.secrets?.[secret];
      assert.ok(declared, `secret ${secret} is declared`);
      env[name.slice(0, -"_FILE".length)] = secretValues[secret] ?? "/run/secrets/file";
    }
    // Credentials come only from files: nothing secret is written into the manifest.
    assert.equal(environment.PACKRUN_EVIDENCE_S3_ACCESS_KEY_ID, undefined);
    assert.equal(environment.PACKRUN_EVIDENCE_S3_SECRET_ACCESS_KEY, undefined);
    const options = objectStoreOptions(loadEvidenceConfig(env));
    assert.equal(options?.bucket, "packrun-artifacts");
    assert.equal(options?.forcePathStyle, true);
    assert.deepEqual(options?.credentials, {
      accessKeyId: "AKIDEXAMPLE",
      secretAccessKey: "wJalrXUtnFEMI/K7MDENG",
    });
    // The base services' secrets stay mounted.
    for (const secret of base.services.evidence?.secrets ?? []) {
      assert.ok(service.secrets?.includes(secret), `still mounts ${secret}`);
    }
  });
});

describe("Kubernetes object store component", () => {
  const dir = path.join(deploy, "kubernetes", "object-store");
  const component = parseYaml(read(path.join(dir, "kustomization.yaml"))) as {
    kind: string;
    resources: string[];
    patches: { path: string }[];
  };

  test("is a Kustomize component whose files exist", () => {
    assert.equal(component.kind, "Component");
    for (const file of [...component.resources, ...component.patches.map((p) => p.path)]) {
      assert.ok(existsSync(path.join(dir, file)), file);
    }
  });

  test("the evidence patch loads, with the credentials from the Secret by key", () => {
    const secret = parseYaml(read(path.join(dir, "secret.yaml"))) as {
      metadata: { name: string };
      stringData: Record<string, string>;
    };
    new Secret(secret as never).validate();
    const patch = parseYaml(read(path.join(dir, "evidence-object-store.yaml"))) as {
      metadata: { name: string };
      spec: {
        template: {
          spec: {
            containers: {
              name: string;
              env: {
                name: string;
                value?: string;
                valueFrom?: { secretKeyRef: { name: string; key: string } };
              }[];
            }[];
          };
        };
      };
    };
    assert.equal(patch.metadata.name, "evidence");
    const container = patch.spec.template.spec.containers[0];
    assert.equal(container?.name, "evidence");
    const env: Record<string, string> = {
      DATABASE_URL: "postgres://packrun:secret@postgres:5432/packrun",
      PACKRUN_EVIDENCE_SIGNING_KEY: "/etc/packrun/signing-key/signing-key.pem",
      // As the base ConfigMap (deploy/kubernetes/config.yaml) sets them for every service.
      PACKRUN_TLS_CA: "/etc/packrun/tls/ca.pem",
      PACKRUN_TLS_CERT: "/etc/packrun/tls/tls.crt",
      PACKRUN_TLS_KEY: "/etc/packrun/tls/tls.key",
    };
    const fromSecrets: string[] = [];
    for (const variable of container?.env ?? []) {
      if (variable.valueFrom !== undefined) {
        const { name, key } = variable.valueFrom.secretKeyRef;
        assert.equal(name, secret.metadata.name);
        assert.ok(Object.hasOwn(secret.stringData, key), `Secret has ${key}`);
        env[variable.name] = `${key}-value`;
        fromSecrets.push(variable.name);
      } else {
        env[variable.name] = variable.value ?? "";
      }
    }
    assert.deepEqual(fromSecrets.sort(), [
      "PACKRUN_EVIDENCE_S3_ACCESS_KEY_ID",
      "PACKRUN_EVIDENCE_S3_SECRET_ACCESS_KEY",
    ]);
    const options = objectStoreOptions(loadEvidenceConfig(env));
    assert.equal(options?.bucket, "packrun-artifacts");
    assert.deepEqual(options?.credentials, {
      accessKeyId: "PACKRUN_EVIDENCE_S3_ACCESS_KEY_ID-value",
      secretAccessKey: "PACKRUN_EVIDENCE_S3_SECRET_ACCESS_KEY-value",
    });
  });
});
