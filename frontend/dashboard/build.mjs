// Bundles the dashboard into datasaas/static/dashboard with content-hashed names, writes
// manifest.json (logical name -> file, and the bundled packages) for the app, and LICENSES: the
// licence of every third-party package inside the bundle. Run through `make frontend`; an
// argument names another output directory (the tests rebuild there and compare).
import { build } from "esbuild";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";

const here = path.dirname(new URL(import.meta.url).pathname);
const outdir = path.resolve(process.argv[2] ?? path.join(here, "../../datasaas/static/dashboard"));

fs.rmSync(outdir, { recursive: true, force: true });
fs.mkdirSync(outdir, { recursive: true });

const result = await build({
  absWorkingDir: here,
  entryPoints: { dashboard: "src/main.ts" },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022", "chrome110", "firefox115", "safari16"],
  outdir,
  entryNames: "[name]-[hash]",
  legalComments: "none",
  metafile: true,
  logLevel: "warning",
});

const manifest = {};
const packages = new Set();
for (const [file, output] of Object.entries(result.metafile.outputs)) {
  if (output.entryPoint) {
    manifest["dashboard.js"] = path.basename(file);
    if (output.cssBundle) manifest["dashboard.css"] = path.basename(output.cssBundle);
  }
  for (const input of Object.keys(output.inputs)) {
    const found = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//g);
    if (found) packages.add(found.at(-1).slice("node_modules/".length, -1));
  }
}

const licences = [];
let notice = "Third-party software bundled into the DataSaaS dashboard (datasaas/static/dashboard).\n";
for (const name of [...packages].sort()) {
  const dir = path.join(here, "node_modules", name);
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
  const file = fs.readdirSync(dir).find((f) => /^(licen[cs]e|copying)/i.test(f));
  const text = file
    ? fs.readFileSync(path.join(dir, file), "utf8")
    : `${name} ${pkg.version} is published under "${pkg.license}"; the package ships no licence file.\n`;
  notice += `\n${"=".repeat(78)}\n${name} ${pkg.version} (${pkg.license})\n${"=".repeat(78)}\n\n${text.trim()}\n`;
  licences.push({ package: name, version: pkg.version, license: pkg.license });
}
fs.writeFileSync(path.join(outdir, "LICENSES"), notice);
fs.writeFileSync(
  path.join(outdir, "manifest.json"),
  `${JSON.stringify({ files: manifest, licences, licenceFile: "LICENSES" }, null, 2)}\n`,
);
for (const [logical, name] of Object.entries(manifest)) {
  const bytes = fs.readFileSync(path.join(outdir, name));
  const gzip = zlib.gzipSync(bytes, { level: 9 }).length;
  console.log(`${logical.padEnd(16)} ${name.padEnd(28)} ${bytes.length} bytes, ${gzip} gzip`);
}
