// Runs the unit tests (test/*.test.ts) with Node's own test runner: esbuild turns each into a
// plain ES module in a temporary directory first (Node 20 does not run TypeScript itself).
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const here = path.dirname(new URL(import.meta.url).pathname);
const outdir = fs.mkdtempSync(path.join(os.tmpdir(), "dashboard-tests-"));
const entryPoints = fs
  .readdirSync(here)
  .filter((name) => name.endsWith(".test.ts"))
  .map((name) => path.join(here, name));
try {
  await build({
    entryPoints,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    outdir,
    outExtension: { ".js": ".mjs" },
    logLevel: "warning",
  });
  const files = fs.readdirSync(outdir).map((name) => path.join(outdir, name));
  const result = spawnSync(process.execPath, ["--test", ...files], { stdio: "inherit" });
  process.exitCode = result.status ?? 1;
} finally {
  fs.rmSync(outdir, { recursive: true, force: true });
}
