// The packed tarball installed into a fresh app the ways users install packages, then used: an API-key
// sign-in, a refresh against a local token endpoint, and a write that waits while a util-linux `flock`
// holds Codex's auth.json.lock. Nothing is compiled and no install script runs, in the package or in
// anything it pulls in. Each install's time and node_modules size are printed (for the design notes).
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process"
import { createServer, type Server } from "node:http"
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { unsignedJwt } from "../../src/testing/TokenEndpoint.js"
import { chatgptJson } from "../support/fixtures.js"

const root = join(import.meta.dirname, "..", "..")
const work = mkdtempSync(join(tmpdir(), "effect-auth-install-"))
afterAll(() => rmSync(work, { recursive: true, force: true }))

const version = (name: string) => JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8")).version as string
/** The README's library line, at the versions this repository tests with. */
const peers = ["effect", "@effect/platform", "@effect/platform-node"].map((name) => `${name}@${version(name)}`)

/**
 * Runs a command to its end without blocking this worker (vitest's worker must keep answering while
 * installs take minutes); fails with its output unless it exits 0.
 */
const exec = (command: string, args: ReadonlyArray<string>, options: { cwd: string; env?: NodeJS.ProcessEnv }) =>
  new Promise<string>((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.once("error", reject)
    child.once("exit", (code) =>
      code === 0 ? resolve(stdout) : reject(new Error(`${command} ${args.join(" ")} failed (${code}):\n${stdout}\n${stderr}`))
    )
  })

let tarball: string
beforeAll(async () => {
  // What `npm pack` and `npm publish` do (prepack builds), with the build's output kept apart from pack's JSON.
  await exec("npm", ["run", "build"], { cwd: root })
  const out = await exec("npm", ["pack", "--ignore-scripts", "--pack-destination", work, "--json"], { cwd: root })
  tarball = join(work, (JSON.parse(out) as Array<{ filename: string }>)[0]!.filename)
})

/** A PATH with node, npm and flock, and no compiler or make: as in node:20-slim and many CI images. */
const pathWithoutCompiler = () => {
  const bin = join(work, "bin-without-compiler")
  mkdirSync(bin, { recursive: true })
  for (const tool of ["node", "npm", "npx", "flock", "sh", "env", "sleep"]) {
    const found = execFileSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).trim()
    if (!existsSync(join(bin, tool))) symlinkSync(found, join(bin, tool))
  }
  return bin
}

interface Installed {
  readonly app: string
  readonly env: NodeJS.ProcessEnv
  readonly seconds: number
  readonly megabytes: number
}

/** A fresh app with the tarball and the library's peers installed by `command`. */
const install = async (
  name: string,
  command: ReadonlyArray<string>,
  env: NodeJS.ProcessEnv = process.env,
  fields: Record<string, unknown> = {}
): Promise<Installed> => {
  const app = join(work, name)
  mkdirSync(app)
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: `app-${name}`, private: true, type: "module", ...fields }))
  copyFileSync(join(import.meta.dirname, "app.mjs"), join(app, "app.mjs"))
  const started = performance.now()
  await exec(command[0]!, [...command.slice(1), tarball, ...peers], { cwd: app, env })
  const seconds = (performance.now() - started) / 1000
  const megabytes = Number(execFileSync("du", ["-sk", join(app, "node_modules")], { encoding: "utf8" }).split("\t")[0]) / 1024
  console.log(`install ${name}: ${seconds.toFixed(1)} s, node_modules ${megabytes.toFixed(1)} MB (${command.join(" ")})`)
  return { app, env, seconds, megabytes }
}

/** Every package.json under node_modules (pnpm's .pnpm store included), symlinks not followed. */
const manifests = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry)
    if (lstatSync(path).isSymbolicLink()) return []
    if (lstatSync(path).isDirectory()) return manifests(path)
    return entry === "package.json" ? [path] : []
  })

const lifecycle = ["preinstall", "install", "postinstall"]

/**
 * Install scripts that come with Effect's own platform packages (the peers), not with this package:
 * msgpackr's optional accelerator (through @effect/platform) and @parcel/watcher (through
 * @effect/platform-node-shared). Both find a prebuilt binary or do without, and this library needs
 * neither: the apps below work with their scripts skipped.
 */
const effectsOwnInstallScripts = ["msgpackr-extract", "@parcel/watcher"]

/** Runs a program of the app to its end: its exit code and output. */
const run = (installed: Installed, args: ReadonlyArray<string>, extraEnv: NodeJS.ProcessEnv, stdin = "") =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(args[0]!, args.slice(1), { cwd: installed.app, env: { ...installed.env, ...extraEnv } })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.once("error", reject)
    child.once("exit", (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(stdin)
  })

/** util-linux `flock` holding `lock` while it runs `command`; resolves once it holds it. */
const holdWithFlock = (installed: Installed, lock: string, command: string) =>
  new Promise<ChildProcess>((resolve, reject) => {
    const child = spawn("flock", ["-o", lock, "-c", `echo held; ${command}`], { env: installed.env, stdio: ["ignore", "pipe", "inherit"] })
    child.once("error", reject)
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => chunk.includes("held") && resolve(child))
  })

/** A token endpoint on 127.0.0.1 that rotates the refresh token once. */
let endpoint: Server
let tokenUrl: string
let requests = 0
beforeAll(async () => {
  endpoint = createServer((request, response) => {
    request.resume().on("end", () => {
      requests++
      response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({
        access_token: unsignedJwt({ exp: Math.floor(Date.now() / 1000) + 3600, marker: "installed-access" }),
        refresh_token: `rotated-refresh-${requests}`,
        id_token: (chatgptJson().tokens as { id_token: string }).id_token,
        expires_in: 3600
      }))
    })
  })
  await new Promise<void>((resolve) => endpoint.listen(0, "127.0.0.1", resolve))
  tokenUrl = `http://127.0.0.1:${(endpoint.address() as { port: number }).port}/oauth/token`
})
afterAll(() => new Promise<void>((resolve) => endpoint === undefined ? resolve() : endpoint.close(() => resolve())))

const scenario = (name: string, installing: () => Promise<Installed>) =>
  describe(name, () => {
    let installed: Installed
    let home: string
    beforeAll(async () => {
      installed = await installing()
      home = join(installed.app, "codex-home")
    })
    const codexEnv = () => ({ CODEX_HOME: home, CODEX_REFRESH_TOKEN_URL_OVERRIDE: tokenUrl })
    const authJson = () => JSON.parse(readFileSync(join(home, "auth.json"), "utf8"))

    it("the package has no dependency and no install script; the tree's only install scripts are Effect's platform packages' own", () => {
      const installedPackage = join(installed.app, "node_modules", "effect-auth-manager")
      const manifest = JSON.parse(readFileSync(join(installedPackage, "package.json"), "utf8"))
      expect(manifest.dependencies).toBeUndefined()
      expect(lifecycle.filter((hook) => hook in (manifest.scripts ?? {}))).toEqual([])
      expect(existsSync(join(installedPackage, "native", "prebuilds", "linux-x64", "flock.node"))).toBe(true)
      const all = manifests(join(installed.app, "node_modules"))
      expect(all.length).toBeGreaterThan(50)
      const withScripts = all.flatMap((file) => {
        const { name, scripts = {} } = JSON.parse(readFileSync(file, "utf8")) as { name?: string; scripts?: Record<string, string> }
        return lifecycle.some((hook) => hook in scripts) || existsSync(join(dirname(file), "binding.gyp")) ? [name] : []
      })
      expect([...new Set(withScripts)].sort()).toEqual([...effectsOwnInstallScripts].sort())
      expect(all.some((file) => file.includes("fs-ext"))).toBe(false)
    })

    it("signs in with an API key, and `effect-auth status` says so without a warning", async () => {
      const signIn = await run(installed, ["node", "app.mjs", "apikey", "sk-installed-1"], codexEnv())
      expect(signIn.stderr).toBe("")
      expect({ code: signIn.code, out: JSON.parse(signIn.stdout) }).toEqual({ code: 0, out: { method: "apikey", status: "healthy" } })
      expect(authJson().OPENAI_API_KEY).toBe("sk-installed-1")
      const status = await run(installed, ["node", "node_modules/effect-auth-manager/dist/bin/effect-auth.cjs", "status"], codexEnv())
      expect(status).toEqual({ code: 0, stdout: "Signed in with an API key\n", stderr: "" })
    })

    it("refreshes against a local token endpoint and saves the rotated refresh token", async () => {
      writeFileSync(join(home, "auth.json"), JSON.stringify(chatgptJson({ now: Date.now(), expiresIn: -60_000 })), { mode: 0o600 })
      const before = requests
      const refreshed = await run(installed, ["node", "app.mjs", "refresh"], codexEnv())
      expect(refreshed.stderr).toBe("")
      expect({ code: refreshed.code, out: JSON.parse(refreshed.stdout) }).toEqual({ code: 0, out: { method: "chatgpt", status: "healthy" } })
      expect(requests).toBe(before + 1)
      expect(authJson().tokens.refresh_token).toBe(`rotated-refresh-${requests}`)
    })

    it("a sign-in waits while util-linux flock holds auth.json.lock, then writes", async () => {
      const marker = join(home, "released")
      // The holder writes the marker just before it lets go: a write that lands saw it.
      const holder = await holdWithFlock(installed, join(home, "auth.json.lock"), `sleep 1; echo released > ${marker}`)
      try {
        const signIn = await run(installed, ["node", "app.mjs", "apikey", "sk-installed-2"], codexEnv())
        expect(signIn.code).toBe(0)
        expect(existsSync(marker)).toBe(true)
        expect(authJson().OPENAI_API_KEY).toBe("sk-installed-2")
      } finally {
        holder.kill("SIGKILL")
      }
    })

    it("effect-auth-manager/postgres without its optional peers names them", async () => {
      const imported = await run(installed, ["node", "--input-type=module", "-e", "await import('effect-auth-manager/postgres')"], {})
      expect(imported.code).toBe(1)
      expect(imported.stderr).toMatch(/effect-auth-manager\/postgres needs the package (@effect\/sql|@effect\/sql-pg|@effect\/experimental|pg), which is not installed/)
      expect(imported.stderr).toContain("npm install \"@effect/sql@")
    })
  })

const npmInstall = ["npm", "install", "--prefer-offline", "--no-audit", "--no-fund"]

scenario("(a) npm install with no compiler on the PATH", () => {
  const env = { ...process.env, PATH: pathWithoutCompiler() }
  for (const tool of ["make", "gcc", "g++", "cc"]) {
    expect(spawnSync("sh", ["-c", `command -v ${tool}`], { env }).status, tool).not.toBe(0)
  }
  return install("no-compiler", npmInstall, env)
})

scenario("(b) npm install --ignore-scripts", () => install("ignore-scripts", [...npmInstall, "--ignore-scripts"]))

// As npm advises under --strict-allow-scripts, the app decides about its packages' install scripts: here,
// Effect's two are denied (this package has none to decide about).
scenario("(d) npm install --strict-allow-scripts", () =>
  install("strict-allow-scripts", [...npmInstall, "--strict-allow-scripts"], process.env, {
    allowScripts: Object.fromEntries(effectsOwnInstallScripts.map((name) => [name, false]))
  }))

scenario("(c) pnpm 10 with its defaults", async () => {
  // pnpm itself from the npm registry, into a folder of its own.
  const tools = join(work, "pnpm-itself")
  mkdirSync(tools)
  await exec("npm", ["install", "--prefix", tools, "--prefer-offline", "--no-audit", "--no-fund", "pnpm@10"], { cwd: work })
  const pnpm = join(tools, "node_modules", ".bin", "pnpm")
  return install("pnpm", [pnpm, "add", "--prefer-offline"], { ...process.env, npm_config_store_dir: join(work, "pnpm-store") })
})
