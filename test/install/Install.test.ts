// The packed tarball installed into a fresh app the ways users install packages (test/install/setup.ts),
// then used: an API-key sign-in, a refresh against a local token endpoint, and a write that waits while a
// util-linux `flock` holds Codex's auth.json.lock. Nothing is compiled and no install script of this
// package, or of anything it alone pulls in, runs.
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { existsSync, lstatSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { createServer, type Server } from "node:http"
import { dirname, join } from "node:path"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { unsignedJwt } from "../../src/testing/TokenEndpoint.js"
import { chatgptJson } from "../support/fixtures.js"
import { effectsOwnInstallScripts, type Installed } from "./setup.js"

/** Every package.json under node_modules (pnpm's .pnpm store included), symlinks not followed. */
const manifests = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry)
    if (lstatSync(path).isSymbolicLink()) return []
    if (lstatSync(path).isDirectory()) return manifests(path)
    return entry === "package.json" ? [path] : []
  })

const lifecycle = ["preinstall", "install", "postinstall"]

/** Runs a program of the app to its end: its exit code and output. */
const run = (installed: Installed, args: ReadonlyArray<string>, extraEnv: NodeJS.ProcessEnv, stdin = "") =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(args[0]!, args.slice(1), {
      cwd: installed.app,
      env: { ...process.env, PATH: installed.path, ...extraEnv }
    })
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
    const child = spawn("flock", ["-o", lock, "-c", `echo held; ${command}`], {
      env: { ...process.env, PATH: installed.path },
      stdio: ["ignore", "pipe", "inherit"]
    })
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

const scenario = (name: string, key: string) =>
  describe(name, () => {
    const installed: Installed = inject("installs")[key]!
    const home = join(installed.app, "codex-home")
    it("installs", () => {
      expect(installed.error).toBeUndefined()
      expect(existsSync(join(installed.app, "node_modules", "effect-auth-manager"))).toBe(true)
    })
    const codexEnv = () => ({ CODEX_HOME: home, CODEX_REFRESH_TOKEN_URL_OVERRIDE: tokenUrl })
    const authJson = () => JSON.parse(readFileSync(join(home, "auth.json"), "utf8"))

    it("the package depends on the core and one prebuilt binding, and has no install script; the tree's only install scripts are Effect's platform packages' own", () => {
      const installedPackage = join(installed.app, "node_modules", "effect-auth-manager")
      const manifest = JSON.parse(readFileSync(join(installedPackage, "package.json"), "utf8"))
      // The Effect-free core shared by both editions, and the OS keyring binding, prebuilt per platform (no
      // install script), loaded only by the keyring store.
      expect(Object.keys(manifest.dependencies ?? {}).sort()).toEqual(["@effect-auth-manager/core", "@napi-rs/keyring"])
      expect(lifecycle.filter((hook) => hook in (manifest.scripts ?? {}))).toEqual([])
      // Codex's lock: the prebuilt addon ships in the core, shared by both editions.
      const core = join(installed.app, "node_modules", "@effect-auth-manager", "core")
      expect(existsSync(join(core, "native", "prebuilds", "linux-x64", "flock.node"))).toBe(true)
      const all = manifests(join(installed.app, "node_modules"))
      expect(all.length).toBeGreaterThan(50)
      const withScripts = all.flatMap((file) => {
        const { name, scripts = {} } = JSON.parse(readFileSync(file, "utf8")) as {
          name?: string
          scripts?: Record<string, string>
        }
        return lifecycle.some((hook) => hook in scripts) || existsSync(join(dirname(file), "binding.gyp")) ? [name] : []
      })
      expect([...new Set(withScripts)].sort()).toEqual([...effectsOwnInstallScripts].sort())
      expect(all.some((file) => file.includes("fs-ext"))).toBe(false)
    })

    it("signs in with an API key, and `effect-auth status` says so without a warning", async () => {
      const signIn = await run(installed, ["node", "app.mjs", "apikey", "sk-installed-1"], codexEnv())
      expect(signIn.stderr).toBe("")
      expect({ code: signIn.code, out: JSON.parse(signIn.stdout) }).toEqual({
        code: 0,
        out: { method: "apikey", status: "healthy" }
      })
      expect(authJson().OPENAI_API_KEY).toBe("sk-installed-1")
      const status = await run(installed, [
        "node",
        "node_modules/effect-auth-manager/dist/bin/effect-auth.cjs",
        "status"
      ], codexEnv())
      expect(status).toEqual({ code: 0, stdout: "Signed in with an API key\n", stderr: "" })
    })

    it("refreshes against a local token endpoint and saves the rotated refresh token", async () => {
      writeFileSync(join(home, "auth.json"), JSON.stringify(chatgptJson({ now: Date.now(), expiresIn: -60_000 })), {
        mode: 0o600
      })
      const before = requests
      const refreshed = await run(installed, ["node", "app.mjs", "refresh"], codexEnv())
      expect(refreshed.stderr).toBe("")
      expect({ code: refreshed.code, out: JSON.parse(refreshed.stdout) }).toEqual({
        code: 0,
        out: { method: "chatgpt", status: "healthy" }
      })
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
      const imported = await run(installed, [
        "node",
        "--input-type=module",
        "-e",
        "await import('effect-auth-manager/postgres')"
      ], {})
      expect(imported.code).toBe(1)
      expect(imported.stderr).toMatch(
        /effect-auth-manager\/postgres needs the package (@effect\/sql|@effect\/sql-pg|@effect\/experimental|pg), which is not installed/
      )
      expect(imported.stderr).toContain("npm install \"@effect/sql@")
    })
  })

scenario("(a) npm install with no compiler on the PATH", "no-compiler")
scenario("(b) npm install --ignore-scripts", "ignore-scripts")
scenario("(d) npm install --strict-allow-scripts", "strict-allow-scripts")
scenario("(c) pnpm 10 with its defaults", "pnpm")

describe("(a) the PATH without a compiler", () => {
  it("has node, npm and flock, and no make, gcc, g++ or cc", () => {
    const env = { ...process.env, PATH: inject("installs")["no-compiler"]!.path }
    for (const tool of ["node", "npm", "flock"]) {
      expect(spawnSync("sh", ["-c", `command -v ${tool}`], { env }).status, tool).toBe(0)
    }
    for (const tool of ["make", "gcc", "g++", "cc"]) {
      expect(spawnSync("sh", ["-c", `command -v ${tool}`], { env }).status, tool).not.toBe(0)
    }
  })
})
