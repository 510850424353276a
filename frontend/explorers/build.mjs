// Bundles the explorers into datasaas/static/vendor with content-hashed names, writes
// manifest.json (logical name -> file) for the app, and copies the licence of every package
// that ends up in a bundle into vendor/licenses. Run through `make assets`.
import { build } from "esbuild";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";

const here = path.dirname(new URL(import.meta.url).pathname);
const outdir = path.resolve(here, "../../datasaas/static/vendor");

// One classic script per page (plus Monaco's workers for GraphiQL), each with its CSS.
const entryPoints = {
  graphiql: "src/graphiql.jsx",
  swagger: "src/swagger.js",
  "redoc-init": "src/redoc.js",
  "editor.worker": "monaco-editor/esm/vs/editor/editor.worker.js",
  "json.worker": "monaco-editor/esm/vs/language/json/json.worker.js",
  "graphql.worker": "monaco-graphql/esm/graphql.worker.js",
};
// UMD bundles that do not survive re-bundling are copied as they are, under a hashed name.
const copies = { "redoc.js": "redoc/bundles/redoc.standalone.js" };
// The ReDoc sidebar loads its "API docs by Redocly" logo from a CDN: offline and under
// `img-src 'self' data:` that is a blocked request, so the bundle gets an empty inline SVG.
const rewrites = {
  "https://cdn.redoc.ly/redoc/logo-mini.svg":
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/%3E",
};
// Notices of the third-party code inside upstream's own bundles.
const notices = [
  "redoc/bundles/redoc.standalone.js.LICENSE.txt",
  "swagger-ui-dist/swagger-ui-bundle.js.LICENSE.txt",
];

fs.rmSync(outdir, { recursive: true, force: true });
fs.mkdirSync(path.join(outdir, "licenses"), { recursive: true });

const result = await build({
  absWorkingDir: here,
  entryPoints,
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  outdir,
  entryNames: "[name]-[hash]",
  assetNames: "[name]-[hash]",
  loader: { ".ttf": "file", ".woff": "file", ".woff2": "file", ".svg": "file", ".png": "file" },
  define: { "process.env.NODE_ENV": '"production"' },
  legalComments: "none",
  metafile: true,
  logLevel: "warning",
});

const manifest = {};
const packages = new Set();
const logicalName = (entryPoint) =>
  Object.keys(entryPoints).find((key) =>
    [path.join(here, entryPoints[key]), path.join(here, "node_modules", entryPoints[key])].includes(
      path.join(here, entryPoint),
    ),
  );
for (const [file, output] of Object.entries(result.metafile.outputs)) {
  if (output.entryPoint) {
    const logical = logicalName(output.entryPoint);
    manifest[`${logical}.js`] = path.basename(file);
    if (output.cssBundle) {
      manifest[`${logical}.css`] = path.basename(output.cssBundle);
    }
  }
  for (const input of Object.keys(output.inputs)) {
    const found = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//g);
    if (found) {
      packages.add(found.at(-1).slice("node_modules/".length, -1));
    }
  }
}

// Fonts inlined as data: URLs (GraphiQL's Roboto and Fira Code) are refused by the pages' CSP
// (`font-src` falls back to `default-src 'self'`): each becomes a hashed file beside the CSS,
// and the CSS is renamed after its new content.
const hashOf = (bytes) =>
  crypto.createHash("sha256").update(bytes).digest("hex").slice(0, 8).toUpperCase();
for (const [logical, name] of Object.entries(manifest)) {
  if (!logical.endsWith(".css")) {
    continue;
  }
  const css = fs.readFileSync(path.join(outdir, name), "utf8");
  const extracted = css.replace(
    /url\(["']?data:font\/([a-z0-9]+);base64,([A-Za-z0-9+/=]+)["']?\)/g,
    (_, type, data) => {
      const bytes = Buffer.from(data, "base64");
      const font = `font-${hashOf(bytes)}.${type}`;
      fs.writeFileSync(path.join(outdir, font), bytes);
      return `url(./${font})`;
    },
  );
  if (extracted !== css) {
    const renamed = `${path.basename(logical, ".css")}-${hashOf(extracted)}.css`;
    fs.rmSync(path.join(outdir, name));
    fs.writeFileSync(path.join(outdir, renamed), extracted);
    manifest[logical] = renamed;
  }
}

for (const [logical, source] of Object.entries(copies)) {
  let text = fs.readFileSync(path.join(here, "node_modules", source), "utf8");
  for (const [from, to] of Object.entries(rewrites)) {
    if (!text.includes(from)) {
      throw new Error(`${source} no longer contains ${from}: review the rewrite`);
    }
    text = text.replaceAll(from, to);
  }
  const name = `${path.basename(logical, ".js")}-${hashOf(text)}.js`;
  fs.writeFileSync(path.join(outdir, name), text);
  manifest[logical] = name;
  packages.add(source.split("/")[0]);
}

for (const notice of notices) {
  fs.copyFileSync(path.join(here, "node_modules", notice), path.join(outdir, "licenses", notice.replace(/\//g, "__")));
}

const licences = [];
for (const name of [...packages].sort()) {
  const dir = path.join(here, "node_modules", name);
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
  const file = fs.readdirSync(dir).find((f) => /^(licen[cs]e|copying)/i.test(f));
  const target = `${name.replace("/", "__")}-${pkg.version}.txt`;
  const text = file
    ? fs.readFileSync(path.join(dir, file), "utf8")
    : `${name} ${pkg.version} is published under "${pkg.license}"; the package ships no licence file.\n`;
  fs.writeFileSync(path.join(outdir, "licenses", target), text);
  licences.push({ package: name, version: pkg.version, license: pkg.license, file: `licenses/${target}` });
}

fs.writeFileSync(
  path.join(outdir, "manifest.json"),
  `${JSON.stringify({ files: manifest, licences }, null, 2)}\n`,
);
for (const [logical, name] of Object.entries(manifest)) {
  const bytes = fs.readFileSync(path.join(outdir, name));
  console.log(`${logical.padEnd(20)} ${name.padEnd(32)} ${bytes.length} bytes`);
}
