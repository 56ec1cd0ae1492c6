// Bundles the example programs into single files under dist/bin: a bundle
// starts several times faster than hundreds of separate ES modules.
import { build } from "esbuild"
import { chmodSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")

export const entries = { "app-server": "examples/app-server.ts", "effect-auth": "examples/cli.ts" }

export const bundle = async (outdir = join(root, "dist", "bin"), programs = entries) => {
  await build({
    entryPoints: Object.fromEntries(Object.entries(programs).map(([name, file]) => [name, join(root, file)])),
    outdir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    minify: true,
    legalComments: "none",
    logLevel: "warning",
    banner: { js: "#!/usr/bin/env node\nimport { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" }
  })
  for (const name of Object.keys(programs)) chmodSync(join(outdir, `${name}.mjs`), 0o755)
  return outdir
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await bundle()
