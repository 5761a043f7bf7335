import assert from "node:assert/strict";
import { createPostgresDatabase, type Database, migrate } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import { PackValidationError } from "@packrun/planning";
import { createTestDatabase, type TestDatabase } from "@packrun/testing";
import semver from "semver";
import { afterAll, beforeAll, test } from "vitest";
import { createPackRegistry, manifestDigest, type PackRegistry } from "./pack-registry.ts";
import { plannerMigrationsDir, plannerSchema } from "./planner-server.ts";

let testDatabase: TestDatabase | undefined;
let db: Database | undefined;
let registry: PackRegistry;

// One beforeAll hook doing everything in order.
beforeAll(async () => {
  testDatabase = await createTestDatabase("planner_registry");
  db = createPostgresDatabase({ url: testDatabase.url });
  await migrate(db, plannerSchema, plannerMigrationsDir);
  registry = createPackRegistry(db);
});
afterAll(async () => {
  await db?.close();
  await testDatabase?.drop();
});

function database(): Database {
  assert.ok(db, "the before hook did not run");
  return db;
}

function pack(name: string, version: string, message = "hello"): string {
  return `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata:
  name: ${name}
  version: ${version}
  description: Says ${message}
  tags: [demo, noop]
spec:
  steps:
    - id: greet
      run:
        uses: builtin:noop
        with:
          message: ${message}
`;
}

function hasCode(code: string) {
  return (error: unknown) => {
    assert.ok(error instanceof PackrunError, `expected a PackrunError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  };
}

test("publishing a new version leaves earlier versions untouched", async () => {
  const v1 = pack("greeter", "1.0.0");
  const first = await registry.register({ tenant: "acme", manifest: v1, publishedBy: "alice" });
  assert.equal(first.created, true);
  assert.equal(first.version.digest, manifestDigest(v1));
  assert.match(first.version.digest, /^sha256:[0-9a-f]{64}$/);
  assert.equal(first.version.description, "Says hello");
  assert.deepEqual(first.version.tags, ["demo", "noop"]);
  assert.equal(first.version.publishedBy, "alice");
  assert.ok(first.version.publishedAt instanceof Date);

  const second = await registry.register({
    tenant: "acme",
    manifest: pack("greeter", "2.0.0", "bonjour"),
    publishedBy: "bob",
  });
  assert.equal(second.created, true);

  const old = await registry.get({ tenant: "acme", name: "greeter", version: "1.0.0" });
  assert.equal(old.manifest, v1);
  assert.equal(old.digest, first.version.digest);
  assert.equal(old.publishedBy, "alice");
  assert.equal(old.publishedAt.getTime(), first.version.publishedAt.getTime());
});

test("re-publishing identical bytes is idempotent; different bytes are a conflict", async () => {
  const manifest = pack("idem", "1.0.0");
  const first = await registry.register({ tenant: "acme", manifest, publishedBy: "alice" });
  const again = await registry.register({ tenant: "acme", manifest, publishedBy: "mallory" });
  assert.equal(again.created, false);
  assert.deepEqual(again.version, first.version); // the original publisher is kept

  const changed = pack("idem", "1.0.0", "changed");
  await assert.rejects(
    registry.register({ tenant: "acme", manifest: changed, publishedBy: "alice" }),
    (error: unknown) => {
      hasCode("PACK_VERSION_CONFLICT")(error);
      const message = (error as Error).message;
      assert.match(message, /idem@1\.0\.0/);
      assert.ok(message.includes(first.version.digest), message);
      assert.ok(message.includes(manifestDigest(changed)), message);
      return true;
    },
  );
  // Whitespace is content: the digest covers the exact bytes.
  await assert.rejects(
    registry.register({ tenant: "acme", manifest: `${manifest}\n`, publishedBy: "alice" }),
    hasCode("PACK_VERSION_CONFLICT"),
  );
});

test("concurrent publishes of one version create it exactly once", async () => {
  const manifest = pack("racy", "1.0.0");
  const results = await Promise.all(
    Array.from({ length: 8 }, (_, index) =>
      registry.register({ tenant: "acme", manifest, publishedBy: `worker-${index}` }),
    ),
  );
  assert.equal(results.filter((result) => result.created).length, 1);
  assert.equal(new Set(results.map((result) => result.version.publishedBy)).size, 1);
});

test("the database refuses UPDATE, DELETE and TRUNCATE of a published version", async () => {
  await registry.register({ tenant: "acme", manifest: pack("frozen", "1.0.0"), publishedBy: "a" });
  const immutable = (error: unknown) => {
    assert.match((error as Error).message, /immutable/);
    assert.equal((error as { code?: string }).code, "23000");
    return true;
  };
  await assert.rejects(
    database().query(
      "UPDATE planner.pack_versions SET manifest = 'tampered' WHERE tenant = 'acme' AND name = 'frozen'",
    ),
    immutable,
  );
  await assert.rejects(
    database().query("DELETE FROM planner.pack_versions WHERE tenant = 'acme' AND name = 'frozen'"),
    immutable,
  );
  await assert.rejects(database().query("TRUNCATE planner.pack_versions"), immutable);
  const still = await registry.get({ tenant: "acme", name: "frozen", version: "1.0.0" });
  assert.equal(still.manifest, pack("frozen", "1.0.0"));
});

test("another tenant's packs are invisible", async () => {
  await registry.register({
    tenant: "t-one",
    manifest: pack("secret-sauce", "1.0.0"),
    publishedBy: "a",
  });
  await assert.rejects(
    registry.get({ tenant: "t-two", name: "secret-sauce", version: "1.0.0" }),
    hasCode("PACK_NOT_FOUND"),
  );
  await assert.rejects(
    registry.get({ tenant: "t-two", name: "secret-sauce" }),
    hasCode("PACK_NOT_FOUND"),
  );
  await assert.rejects(
    registry.listVersions({ tenant: "t-two", name: "secret-sauce" }),
    hasCode("PACK_NOT_FOUND"),
  );
  assert.deepEqual((await registry.listPacks({ tenant: "t-two" })).items, []);

  // The same name and version in another tenant is a separate pack, not a conflict.
  const other = await registry.register({
    tenant: "t-two",
    manifest: pack("secret-sauce", "1.0.0", "different"),
    publishedBy: "b",
  });
  assert.equal(other.created, true);
  const mine = await registry.get({ tenant: "t-one", name: "secret-sauce", version: "1.0.0" });
  assert.equal(mine.manifest, pack("secret-sauce", "1.0.0"));
});

test("latest is the highest release by semver precedence, not by publish order or text", async () => {
  const tenant = "latest-test";
  for (const version of ["1.9.0", "1.10.0", "1.2.3", "2.0.0-rc.1"]) {
    await registry.register({ tenant, manifest: pack("sorted", version), publishedBy: "a" });
  }
  assert.equal((await registry.get({ tenant, name: "sorted" })).version, "1.10.0");
  await registry.register({ tenant, manifest: pack("sorted", "2.0.0"), publishedBy: "a" });
  assert.equal((await registry.get({ tenant, name: "sorted", version: "" })).version, "2.0.0");

  // A pack with only pre-releases still has a latest.
  await registry.register({ tenant, manifest: pack("early", "0.1.0-alpha.2"), publishedBy: "a" });
  await registry.register({ tenant, manifest: pack("early", "0.1.0-alpha.10"), publishedBy: "a" });
  await registry.register({
    tenant,
    manifest: pack("early", "0.1.0-alpha.beta"),
    publishedBy: "a",
  });
  assert.equal((await registry.get({ tenant, name: "early" })).version, "0.1.0-alpha.beta");
});

test("versions are listed newest semver first, page by page", async () => {
  const tenant = "versions-test";
  const published = [
    "1.0.0-alpha",
    "1.0.0",
    "1.0.0-alpha.1",
    "0.9.0",
    "1.0.0-rc.1",
    "1.0.0-beta.11",
    "1.0.0-beta.2",
    "1.0.0-beta",
    "10.0.0",
    "2.0.0",
    "1.0.0-alpha.beta",
  ];
  for (const version of published) {
    await registry.register({ tenant, manifest: pack("many", version), publishedBy: "a" });
  }
  const seen: string[] = [];
  let pageToken = "";
  let pages = 0;
  do {
    const page = await registry.listVersions({ tenant, name: "many", pageSize: 3, pageToken });
    assert.ok(page.items.length <= 3);
    seen.push(...page.items.map((item) => item.version));
    pageToken = page.nextPageToken;
    pages++;
  } while (pageToken !== "");
  // semver.org §11 precedence, highest first.
  assert.deepEqual(seen, [
    "10.0.0",
    "2.0.0",
    "1.0.0",
    "1.0.0-rc.1",
    "1.0.0-beta.11",
    "1.0.0-beta.2",
    "1.0.0-beta",
    "1.0.0-alpha.beta",
    "1.0.0-alpha.1",
    "1.0.0-alpha",
    "0.9.0",
  ]);
  assert.deepEqual(seen, [...published].sort(semver.rcompare));
  assert.equal(pages, 4);
});

test("packs are listed by name with their latest version and version count", async () => {
  const tenant = "list-test";
  const names = ["delta", "alpha", "charlie", "echo", "bravo"];
  for (const name of names) {
    await registry.register({ tenant, manifest: pack(name, "1.0.0"), publishedBy: "a" });
  }
  await registry.register({ tenant, manifest: pack("charlie", "1.1.0"), publishedBy: "a" });
  await registry.register({ tenant, manifest: pack("charlie", "3.0.0-beta"), publishedBy: "a" });

  const first = await registry.listPacks({ tenant, pageSize: 2 });
  assert.deepEqual(
    first.items.map((item) => item.name),
    ["alpha", "bravo"],
  );
  assert.notEqual(first.nextPageToken, "");
  const second = await registry.listPacks({ tenant, pageSize: 2, pageToken: first.nextPageToken });
  assert.deepEqual(
    second.items.map((item) => [item.name, item.latest.version, item.versionCount]),
    [
      ["charlie", "1.1.0", 3],
      ["delta", "1.0.0", 1],
    ],
  );
  const third = await registry.listPacks({ tenant, pageSize: 2, pageToken: second.nextPageToken });
  assert.deepEqual(
    third.items.map((item) => item.name),
    ["echo"],
  );
  assert.equal(third.nextPageToken, "");

  // Exactly one full page: no token pointing at an empty page.
  const all = await registry.listPacks({ tenant, pageSize: 5 });
  assert.equal(all.items.length, 5);
  assert.equal(all.nextPageToken, "");
});

test("page tokens are opaque and bound to their listing", async () => {
  const tenant = "token-test";
  for (const name of ["a1", "a2", "a3"]) {
    await registry.register({ tenant, manifest: pack(name, "1.0.0"), publishedBy: "a" });
  }
  const page = await registry.listPacks({ tenant, pageSize: 1 });
  await assert.rejects(
    registry.listPacks({ tenant: "someone-else", pageToken: page.nextPageToken }),
    hasCode("REQUEST_INVALID"),
  );
  await assert.rejects(
    registry.listVersions({ tenant, name: "a1", pageToken: page.nextPageToken }),
    hasCode("REQUEST_INVALID"),
  );
  await assert.rejects(
    registry.listPacks({ tenant, pageToken: "garbage!" }),
    hasCode("REQUEST_INVALID"),
  );
});

test("invalid arguments are refused with a clear REQUEST_INVALID", async () => {
  const manifest = pack("args", "1.0.0");
  const cases: [Promise<unknown>, RegExp][] = [
    [registry.register({ tenant: "", manifest, publishedBy: "a" }), /tenant is required/],
    [
      registry.register({ tenant: "bad tenant", manifest, publishedBy: "a" }),
      /tenant "bad tenant" is invalid/,
    ],
    [registry.register({ tenant: "acme", manifest, publishedBy: "" }), /published_by is required/],
    [registry.register({ tenant: "acme", manifest: "", publishedBy: "a" }), /manifest is required/],
    [registry.get({ tenant: "acme", name: "Not_A_Pack" }), /name "Not_A_Pack" is not a pack name/],
    [registry.get({ tenant: "acme", name: "args", version: "v1" }), /not a semantic version/],
    [registry.get({ tenant: "acme", name: "" }), /name is required/],
  ];
  for (const [promise, message] of cases) {
    await assert.rejects(promise, (error: unknown) => {
      hasCode("REQUEST_INVALID")(error);
      assert.match((error as Error).message, message);
      return true;
    });
  }
});

test("an invalid manifest or a non-canonical version is refused with located diagnostics", async () => {
  await assert.rejects(
    registry.register({
      tenant: "acme",
      manifest: pack("broken", "1.0.0").replace("builtin:noop", "builtin:nope"),
      publishedBy: "a",
    }),
    (error: unknown) => {
      assert.ok(error instanceof PackValidationError);
      assert.equal(error.diagnostics[0]?.path, "spec.steps[0].run.uses");
      assert.equal(error.diagnostics[0]?.line, 12);
      return true;
    },
  );
  for (const version of ["v1.0.0", "1.0.0+build.7"]) {
    await assert.rejects(
      registry.register({ tenant: "acme", manifest: pack("odd", version), publishedBy: "a" }),
      (error: unknown) => {
        assert.ok(error instanceof PackValidationError);
        assert.equal(error.diagnostics[0]?.path, "metadata.version");
        assert.equal(error.diagnostics[0]?.line, 5);
        assert.match(error.message, /canonical form/);
        return true;
      },
    );
  }
});
