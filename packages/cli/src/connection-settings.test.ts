import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, test } from "vitest";
import { parseCliConfig } from "./cli-config-file.ts";
import { CliError } from "./cli-error.ts";
import {
  configFilePath,
  loadConnectionSettings,
  requireUrl,
  resolveConnectionSettings,
} from "./connection-settings.ts";
import { ExitCode } from "./exit-codes.ts";
import { bearerToken } from "./gateway-options.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "packrun-settings-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const file = { url: "http://file:1", token: "file-token" };

test("flags win over the environment, which wins over the config file", () => {
  const env = { PACKRUN_URL: "http://env:2", PACKRUN_TOKEN: "env-token" };
  const all = resolveConnectionSettings(
    { url: "http://flag:3/", token: "flag-token" },
    env,
    file,
    "cli.json",
  );
  assert.equal(all.url, "http://flag:3");
  assert.equal(all.urlSource, "flag");
  assert.equal(all.token, "flag-token");
  assert.equal(all.tokenSource, "flag");

  const fromEnv = resolveConnectionSettings({}, env, file, "cli.json");
  assert.deepEqual(
    [fromEnv.url, fromEnv.urlSource, fromEnv.token, fromEnv.tokenSource],
    ["http://env:2", "env", "env-token", "env"],
  );

  const fromFile = resolveConnectionSettings({}, {}, file, "cli.json");
  assert.deepEqual(
    [fromFile.url, fromFile.urlSource, fromFile.token, fromFile.tokenSource],
    ["http://file:1", "file", "file-token", "file"],
  );

  // Empty values count as unset, so `PACKRUN_TOKEN= packrun ...` falls through.
  const blank = resolveConnectionSettings({}, { PACKRUN_URL: "", PACKRUN_TOKEN: "" }, file, "x");
  assert.equal(blank.tokenSource, "file");
});

test("a malformed URL is an input error naming where it came from", () => {
  assert.throws(
    () => resolveConnectionSettings({}, { PACKRUN_URL: "ftp://x" }, {}, "cli.json"),
    (error: unknown) =>
      error instanceof CliError &&
      error.exitCode === ExitCode.invalidInput &&
      /from PACKRUN_URL/.test(error.message),
  );
  assert.throws(
    () => resolveConnectionSettings({}, {}, { url: "not a url" }, "/home/me/cli.json"),
    /url in \/home\/me\/cli\.json/,
  );
});

test("the config file is --config, then PACKRUN_CLI_CONFIG, then $PACKRUN_HOME/cli.json", () => {
  assert.deepEqual(configFilePath({ config: "a.json" }, { PACKRUN_CLI_CONFIG: "b.json" }), {
    path: "a.json",
    explicit: true,
  });
  assert.deepEqual(configFilePath({}, { PACKRUN_CLI_CONFIG: "b.json" }), {
    path: "b.json",
    explicit: true,
  });
  assert.deepEqual(configFilePath({}, { PACKRUN_HOME: "/srv/packrun" }), {
    path: path.join("/srv/packrun", "cli.json"),
    explicit: false,
  });
  assert.deepEqual(configFilePath({}, {}), {
    path: path.join(".packrun", "cli.json"),
    explicit: false,
  });
});

test("missing settings say every way to give them", async () => {
  const settings = await loadConnectionSettings({}, { PACKRUN_HOME: dir });
  assert.throws(
    () => requireUrl(settings),
    (error: unknown) =>
      error instanceof CliError &&
      error.exitCode === ExitCode.invalidInput &&
      error.message ===
        `no gateway URL: pass --url, set PACKRUN_URL or put "url" in ${path.join(dir, "cli.json")}`,
  );
  await assert.rejects(
    bearerToken(settings),
    (error: unknown) =>
      error instanceof CliError &&
      error.exitCode === ExitCode.auth &&
      /^no token: pass --token, set PACKRUN_TOKEN or put "token" in /.test(error.message),
  );
});

test("a named config file must exist; the default one may not", async () => {
  await assert.rejects(
    loadConnectionSettings({ config: path.join(dir, "nope.json") }, {}),
    /cannot read config file .*nope\.json: no such file or directory/,
  );
  const settings = await loadConnectionSettings({}, { PACKRUN_HOME: path.join(dir, "empty") });
  assert.deepEqual(settings.config, {});
});

test("the config file is read, checked, and its key path resolved against it", async () => {
  const configPath = path.join(dir, "cli.json");
  await writeFile(
    configPath,
    JSON.stringify({
      url: "http://127.0.0.1:8080",
      token: "t",
      signingKeyFile: "keys/dev.jwk.json",
      issuer: "packrun-dev",
      audience: "packrun",
      tenant: "demo",
      subject: "operator",
      groups: ["ops"],
    }),
  );
  const settings = await loadConnectionSettings({}, { PACKRUN_CLI_CONFIG: configPath });
  assert.equal(settings.url, "http://127.0.0.1:8080");
  assert.equal(settings.config.signingKeyFile, path.join(dir, "keys", "dev.jwk.json"));
  assert.deepEqual(settings.config.groups, ["ops"]);

  assert.throws(() => parseCliConfig("{", "c.json"), /config file c\.json: not valid JSON/);
  assert.throws(() => parseCliConfig("[]", "c.json"), /must hold a JSON object/);
  assert.throws(() => parseCliConfig('{"tokn":"x"}', "c.json"), /unknown field\(s\) tokn/);
  assert.throws(() => parseCliConfig('{"url":3}', "c.json"), /url must be a non-empty string/);
  assert.throws(() => parseCliConfig('{"groups":"ops"}', "c.json"), /groups must be an array/);
});
