/**
 * Runs after `npm install` / `npm ci` (root `postinstall`): says which Node runs packrun.
 *
 * npm itself runs under whatever Node the machine has, but every `npm run` script, this one
 * included, finds the pinned `node` dev dependency first on PATH. `.npmrc` keeps npm quiet about
 * the engine warnings that the machine's older Node would otherwise print for every package.
 */
const npmNode = /\bnode\/(v?[\d.]+)/.exec(process.env.npm_config_user_agent ?? "")?.[1];
const lines = [
  `packrun runs on Node ${process.version} (the pinned "node" dev dependency, node_modules/.bin/node)`,
];
if (npmNode && `v${npmNode.replace(/^v/, "")}` !== process.version)
  lines.push(
    `npm itself ran on the machine's Node v${npmNode.replace(/^v/, "")}; npm run scripts use the pinned one`,
  );
process.stdout.write(`${lines.join("\n")}\n`);
