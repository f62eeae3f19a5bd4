// Build @collab/client: declarations with tsc, ESM with esbuild, and the demo board's copy
// (web/collab-client.js, committed so `collab dev` serves it with no build step).
//   node scripts/build.mjs          build dist/ (what `npm pack` ships and the example imports)
//   node scripts/build.mjs --web    build dist/ and write web/collab-client.js (after a change to src/)
//   node scripts/build.mjs --check  only compare web/collab-client.js with a fresh build (exit 1 if stale)
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const webBundle = join(root, "..", "..", "web", "collab-client.js");
const BANNER =
  "// Built from packages/collab-client/src by `node scripts/build.mjs` (esbuild): do not edit.\n" +
  "// The @collab/client package (docs/client.md), bundled for the demo board and `collab dev`.";
const common = { bundle: true, format: "esm", target: "es2022", platform: "browser", legalComments: "none", charset: "utf8" };

async function bundle(entry, extra = {}) {
  const out = await esbuild.build({ ...common, ...extra, entryPoints: [join(root, "src", entry)], write: false });
  return out.outputFiles[0].text;
}

const web = `${BANNER}\n${await bundle("index.ts")}`;
if (process.argv.includes("--check")) {
  const committed = readFileSync(webBundle, "utf8");
  if (committed !== web) {
    console.error("web/collab-client.js differs from a fresh build: run `make client-web` (node scripts/build.mjs --web) and commit");
    process.exit(1);
  }
  process.exit(0);
}
rmSync(join(root, "dist"), { recursive: true, force: true });
execFileSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.json")], { stdio: "inherit" });
writeFileSync(join(root, "dist", "index.js"), await bundle("index.ts"));
writeFileSync(join(root, "dist", "react.js"), await bundle("react.ts", { external: ["react"] }));
if (process.argv.includes("--web")) writeFileSync(webBundle, web);
console.error(`built dist/${process.argv.includes("--web") ? " and web/collab-client.js" : ""}`);
