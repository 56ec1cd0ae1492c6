// Builds the example programs for start-up speed (bench/startup.ts measures it):
//
// - each program is one tree-shaken, minified bundle (dist/bin/NAME.bundle.cjs): a bundle starts several
//   times faster than hundreds of separate ES modules;
// - its `bin` file (dist/bin/NAME.cjs) is a small loader that runs the bundle through V8's code
//   cache: after the first run, the program's functions are not parsed and compiled again (that
//   was a third of `effect-auth status`). The cache lives in the user's cache folder, one file per
//   bundle content, Node version and architecture; V8 rejects a cache it cannot use, and the
//   loader then compiles as usual and writes a new one. EFFECT_AUTH_CODE_CACHE=off disables it;
// - Node's heavier modules (http, https, net, tls, child_process…) are loaded when first used, not at
//   start: an app server answers `initialize` before it ever makes a request or opens a browser.
import { build } from "esbuild"
import { createHash } from "node:crypto"
import { chmodSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { builtinModules, createRequire } from "node:module"
import { basename, dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")

// Cheap, or needed before the first answer anyway: loaded as usual.
const eager = new Set([
  "assert",
  "buffer",
  "crypto",
  "events",
  "fs",
  "fs/promises",
  "module",
  "os",
  "path",
  "process",
  "stream",
  "stream/promises",
  "string_decoder",
  "timers",
  "tty",
  "url",
  "util"
])
const requireHere = createRequire(import.meta.url)

// Every other Node module becomes an object of getters that loads the module on first use.
const lazyBuiltins = {
  name: "lazy-builtins",
  setup(build) {
    build.onResolve({ filter: /^(node:)?[a-z_/0-9]+$/ }, (args) => {
      const name = args.path.replace(/^node:/, "")
      if (args.namespace === "lazy-builtin") return { path: `node:${name}`, external: true }
      if (!builtinModules.includes(name) || eager.has(name)) return undefined
      return { path: name, namespace: "lazy-builtin" }
    })
    build.onLoad({ filter: /.*/, namespace: "lazy-builtin" }, (args) => ({
      loader: "js",
      contents: [
        `let loaded; const load = () => loaded ??= require(${JSON.stringify(`node:${args.path}`)});`,
        // Callable and constructible too, for the modules that are a function.
        "const lazy = module.exports = function (...args) {",
        "  return new.target === undefined ? load().apply(this, args) : Reflect.construct(load(), args, new.target)",
        "};",
        ...Object.keys(requireHere(`node:${args.path}`)).filter((key) => key !== "prototype").map((key) =>
          `Object.defineProperty(lazy, ${
            JSON.stringify(key)
          }, { enumerable: true, configurable: true, get: () => load()[${JSON.stringify(key)}] });`
        )
      ].join("\n")
    }))
  }
}

export const entries = {
  "app-server": "bin/app-server.ts",
  "effect-auth": "bin/effect-auth.ts",
  "effect-auth-main": "bin/effect-auth-main.ts"
}

// A program that imports another program on demand (\`import("./cli-main.js")\`) loads that one's bundle
// then, through its loader: the first bundle holds none of the second's code, so a command that
// needs little (a plain \`effect-auth status\`) reads and compiles little.
const programsOnDemand = (programs) => ({
  name: "programs-on-demand",
  setup(build) {
    const byFile = new Map(Object.entries(programs).map(([name, file]) => [join(root, file), name]))
    // Only the programs' own file names are looked at: a callback for every relative import (thousands,
    // in the dependencies) would make the build several times slower.
    const names = [...byFile.keys()].map((file) => basename(file, ".ts").replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
    build.onResolve({ filter: new RegExp(`^\\.\\.?/(.*/)?(${names.join("|")})\\.js$`) }, (args) => {
      if (args.kind !== "dynamic-import") return undefined
      const name = byFile.get(join(args.resolveDir, args.path).replace(/\.js$/, ".ts"))
      return name === undefined ? undefined : { path: name, namespace: "program-on-demand" }
    })
    // \`require\`, not \`import()\`: the bundle runs as a vm.Script, which has no dynamic import.
    build.onResolve({ filter: /.*/, namespace: "program-on-demand" }, (args) => ({ path: args.path, external: true }))
    build.onLoad({ filter: /.*/, namespace: "program-on-demand" }, (args) => ({
      loader: "js",
      contents: `module.exports = require(${JSON.stringify(`./${args.path}.cjs`)})`,
      resolveDir: root,
      pluginData: args.path
    }))
  }
})

// CommonJS: Node starts a CommonJS entry ~20 ms sooner than an ES module one (no ESM loader).
const loader = (name, hash) =>
  `#!/usr/bin/env node
// Runs ${name}.bundle.cjs with V8's code cache (scripts/bundle.mjs explains why).
"use strict"
const { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } = require("node:fs")
const { createRequire } = require("node:module")
const { homedir } = require("node:os")
const { join } = require("node:path")
const { Script } = require("node:vm")

const file = join(__dirname, "${name}.bundle.cjs")
// The bundle is ASCII (esbuild escapes the rest): latin1 is the cheapest exact decoding.
const source = readFileSync(file, "latin1")
const enabled = process.env.EFFECT_AUTH_CODE_CACHE !== "off"
const cacheDir = join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "effect-auth-manager")
const cacheFile = join(cacheDir, \`${name}-${hash}-\${process.version}-\${process.arch}.v8\`)
let cachedData
if (enabled) {
  try {
    cachedData = readFileSync(cacheFile)
  } catch {}
}
const script = new Script(
  \`(function (exports, require, module, __filename, __dirname) {\${source}\\n})\`,
  { filename: file, cachedData }
)
if (enabled && (cachedData === undefined || script.cachedDataRejected)) {
  // At exit: the cache then holds every function the run compiled, not only the top level.
  process.once("exit", () => {
    try {
      mkdirSync(cacheDir, { recursive: true, mode: 0o700 })
      const partial = \`\${cacheFile}.\${process.pid}\`
      writeFileSync(partial, script.createCachedData(), { mode: 0o600 })
      renameSync(partial, cacheFile)
      // The caches of this program's earlier builds will never be read again.
      const current = cacheFile.slice(cacheDir.length + 1)
      for (const name of readdirSync(cacheDir)) {
        if (name !== current && /^${name}-[0-9a-f]{16}-.*[.]v8$/.test(name)) rmSync(join(cacheDir, name), { force: true })
      }
    } catch {}
  })
}
const bundled = { exports: {} }
script.runInThisContext()(bundled.exports, createRequire(file), bundled, file, __dirname)
`

export const bundle = async (outdir = join(root, "dist", "bin"), programs = entries) => {
  // One build for all of them: the modules they share are read and parsed once.
  await build({
    entryPoints: Object.fromEntries(
      Object.entries(programs).map(([name, file]) => [`${name}.bundle`, join(root, file)])
    ),
    outdir,
    outExtension: { ".js": ".cjs" },
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    minify: true,
    legalComments: "none",
    // pg's optional native binding: never used, never installed.
    external: ["pg-native"],
    logLevel: "warning",
    // The sources are ES modules: in a CommonJS bundle `import.meta.url` would be undefined (the
    // flock binding is required relative to it), so it becomes the bundle's own URL.
    define: { "import.meta.url": "__bundleUrl" },
    banner: { js: "var __bundleUrl = require(\"node:url\").pathToFileURL(__filename).href;" },
    plugins: [lazyBuiltins, programsOnDemand(programs)]
  })
  for (const name of Object.keys(programs)) {
    const hash = createHash("sha256").update(readFileSync(join(outdir, `${name}.bundle.cjs`))).digest("hex").slice(
      0,
      16
    )
    writeFileSync(join(outdir, `${name}.cjs`), loader(name, hash))
    chmodSync(join(outdir, `${name}.cjs`), 0o755)
    // The same program for those who run or import it as an ES module.
    writeFileSync(join(outdir, `${name}.mjs`), `#!/usr/bin/env node\nimport "./${name}.cjs"\n`)
    chmodSync(join(outdir, `${name}.mjs`), 0o755)
  }
  rmSync(join(outdir, "chunks"), { recursive: true, force: true })
  return outdir
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await bundle()
}
