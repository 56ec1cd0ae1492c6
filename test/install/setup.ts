// Global setup of `npm run test:install`: builds and packs the package, then installs the tarball into a
// fresh app in each way users install packages, timing each install and measuring its node_modules. It
// runs in vitest's main process: an install takes longer than a test worker may stay silent.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { TestProject } from "vitest/node"
import { installEditionApps } from "./editionApps.js"
import { exec, pack, root, version } from "./tools.js"

/**
 * Install scripts that come with Effect's own platform packages (the peers), not with this package:
 * msgpackr's optional accelerator (through @effect/platform) and @parcel/watcher (through
 * @effect/platform-node-shared). Both find a prebuilt binary or do without, and this library needs
 * neither: the apps work with their scripts skipped.
 */
export const effectsOwnInstallScripts = ["msgpackr-extract", "@parcel/watcher"]

export interface Installed {
  readonly name: string
  readonly app: string
  readonly path: string
  readonly seconds: number
  readonly megabytes: number
  /** Why the install failed, when it did (the scenario's tests then fail with it). */
  readonly error?: string
  /** What the package manager said on stderr while installing (its warnings). */
  readonly warnings?: string
}

declare module "vitest" {
  export interface ProvidedContext {
    installs: Record<string, Installed>
  }
}

export default async function setup(project: TestProject) {
  const work = mkdtempSync(join(tmpdir(), "effect-auth-install-"))
  // What `npm pack` and `npm publish` do (prepack builds, the core first), with the build's output kept
  // apart from pack's JSON. The edition depends on the Effect-free core, which is not on the registry
  // yet: its tarball is installed beside it.
  await exec("npm", ["run", "build"], { cwd: root })
  const core = await pack(work, "@effect-auth-manager/core")
  const tarball = await pack(work)
  const tarballs = [tarball, core]
  // The README's library line, at the versions this repository tests with.
  const peers = ["effect", "@effect/platform", "@effect/platform-node"].map((name) => `${name}@${version(name)}`)

  // A PATH with node, npm, flock and a shell, and no compiler or make: as in node:20-slim and many CI images.
  const bare = join(work, "bin-without-compiler")
  mkdirSync(bare)
  for (const tool of ["node", "npm", "npx", "flock", "sh", "env", "sleep"]) {
    symlinkSync((await exec("sh", ["-c", `command -v ${tool}`], { cwd: work })).trim(), join(bare, tool))
  }
  const npmInstall = ["npm", "install", "--prefer-offline", "--no-audit", "--no-fund"]

  const install = async (
    name: string,
    command: ReadonlyArray<string>,
    path: string,
    fields: Record<string, unknown> = {}
  ) => {
    const app = join(work, name)
    mkdirSync(app)
    writeFileSync(
      join(app, "package.json"),
      JSON.stringify({ name: `app-${name}`, private: true, type: "module", ...fields })
    )
    copyFileSync(join(import.meta.dirname, "app.mjs"), join(app, "app.mjs"))
    const started = performance.now()
    try {
      await exec(command[0]!, [...command.slice(1), ...tarballs, ...peers], {
        cwd: app,
        env: { ...process.env, PATH: path }
      })
    } catch (error) {
      return { name, app, path, seconds: 0, megabytes: 0, error: String(error) }
    }
    const seconds = (performance.now() - started) / 1000
    const megabytes = Number((await exec("du", ["-sk", join(app, "node_modules")], { cwd: app })).split("\t")[0]) / 1024
    console.log(
      `install ${name}: ${seconds.toFixed(1)} s, node_modules ${megabytes.toFixed(1)} MB (${command.join(" ")})`
    )
    return { name, app, path, seconds, megabytes }
  }

  const path = process.env.PATH ?? ""
  const installs: Record<string, Installed> = {}
  installs["no-compiler"] = await install("no-compiler", npmInstall, bare)
  installs["ignore-scripts"] = await install("ignore-scripts", [...npmInstall, "--ignore-scripts"], path)
  // As npm advises under --strict-allow-scripts, the app decides about its packages' install scripts:
  // here, Effect's two are denied (this package has none to decide about).
  installs["strict-allow-scripts"] = await install(
    "strict-allow-scripts",
    [...npmInstall, "--strict-allow-scripts"],
    path,
    {
      allowScripts: Object.fromEntries(effectsOwnInstallScripts.map((name) => [name, false]))
    }
  )
  // pnpm 10 itself from the npm registry, into a folder of its own; its store in the work folder.
  const tools = join(work, "pnpm-itself")
  mkdirSync(tools)
  await exec("npm", ["install", "--prefix", tools, "--prefer-offline", "--no-audit", "--no-fund", "pnpm@10"], {
    cwd: work
  })
  const pnpm = join(tools, "node_modules", ".bin", "pnpm")
  console.log(`pnpm ${(await exec(pnpm, ["--version"], { cwd: work })).trim()}`)
  process.env.npm_config_store_dir = join(work, "pnpm-store")
  // pnpm takes the core for the edition's dependency from its tarball only when told so.
  installs.pnpm = await install("pnpm", [pnpm, "add", "--prefer-offline"], path, {
    pnpm: { overrides: { "@effect-auth-manager/core": `file:${core}` } }
  })
  // npm itself does not know pnpm's setting (and says so).
  delete process.env.npm_config_store_dir
  Object.assign(installs, await installEditionApps(work, { effect3: tarball, core }))

  project.provide("installs", installs)
  return () => {
    if (existsSync(work)) rmSync(work, { recursive: true, force: true })
  }
}
