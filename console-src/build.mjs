// Bundles entry.js into one minified ES module for the console: `npm ci && npm run build`.
import { build } from "esbuild";
import { readFileSync } from "node:fs";

const out = new URL("../api/console/static/vendor/codemirror.js", import.meta.url).pathname;
const lock = JSON.parse(readFileSync(new URL("./package-lock.json", import.meta.url)));
const versions = Object.entries(lock.packages)
  .filter(([path]) => path.startsWith("node_modules/") && !path.includes("esbuild"))
  .map(([path, meta]) => `${path.slice("node_modules/".length)}@${meta.version}`)
  .sort();

await build({
  entryPoints: [new URL("./entry.js", import.meta.url).pathname],
  outfile: out,
  bundle: true,
  format: "esm",
  minify: true,
  target: "es2020",
  legalComments: "none",
  banner: { js: `/* Chorus console vendor bundle, built by console-src/build.mjs from: ${versions.join(", ")} (MIT/ISC licences) */` },
});
console.log(`wrote ${out}`);
