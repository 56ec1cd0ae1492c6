// A fresh app of each edition (test/install/editionApps.ts): it installs the packed edition and core
// beside its own Effect with no peer warning, runs the README's server example against a CODEX_HOME of
// its own, and passes the "Tests of your own" snippet under its own vitest.
import { spawn } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, inject, it } from "vitest"
import { effect4App } from "./editionApps.js"
import type { Installed } from "./setup.js"

/** Starts `command` in the app and resolves with its stdout once every line of `expected` was printed. */
const answers = (
  installed: Installed,
  command: ReadonlyArray<string>,
  env: NodeJS.ProcessEnv,
  expected: Array<string>
) =>
  new Promise<string>((resolve, reject) => {
    const child = spawn(command[0]!, command.slice(1), {
      cwd: installed.app,
      env: { ...process.env, PATH: installed.path, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
      if (expected.every((line) => stdout.split("\n").includes(line))) {
        child.kill("SIGTERM")
        resolve(stdout)
      }
    })
    child.once("error", reject)
    child.once(
      "exit",
      (code) => reject(new Error(`${command.join(" ")} exited (${code}) early:\n${stdout}\n${stderr}`))
    )
  })

/** Runs `command` in the app to its end. */
const run = (installed: Installed, command: ReadonlyArray<string>) =>
  new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn(command[0]!, command.slice(1), {
      cwd: installed.app,
      env: { ...process.env, PATH: installed.path, CI: "1", NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
    child.once("error", reject)
    child.once("exit", (code) => resolve({ code, output }))
  })

const freshApp = (name: string, key: string, server: ReadonlyArray<string>, packageName: string) =>
  describe(name, () => {
    const installed = () => inject("installs")[key]!

    it(`installs ${packageName} and the core beside its own Effect, with no peer warning`, () => {
      expect(installed().error).toBeUndefined()
      expect(installed().warnings ?? "").not.toMatch(/peer|ERESOLVE/i)
    })

    it("runs the README's server example: it watches and polls the credentials of its CODEX_HOME", async () => {
      const home = join(installed().app, "codex-home")
      mkdirSync(home, { recursive: true })
      writeFileSync(join(home, "auth.json"), JSON.stringify({ OPENAI_API_KEY: "sk-fresh-app" }), { mode: 0o600 })
      const stdout = await answers(installed(), server, { CODEX_HOME: home }, [
        "auth: apikey, healthy",
        "apikey: token ready"
      ])
      expect(stdout).not.toContain("sk-fresh-app")
      // Codex's lock is taken through the prebuilt addon the core ships: no warning that it cannot be.
      expect(stdout).not.toContain("lock on auth.json cannot be taken")
    })

    it("passes the \"Tests of your own\" snippet under its own vitest", async () => {
      const { code, output } = await run(installed(), ["npx", "vitest", "run", "own.test.ts"])
      expect({ code, passed: /Tests\s+1 passed/.test(output) }, output).toEqual({ code: 0, passed: true })
    })
  })

freshApp("a fresh Effect 3.22 app", "effect3-app", ["npx", "tsx", "server.ts"], "effect-auth-manager")

if (effect4App.ready) {
  // Node 22 strips the types of server.ts itself.
  freshApp("a fresh Effect 4.1 app, on Node 22", "effect4-app", ["node", "server.ts"], "@effect-auth-manager/effect4")
} else {
  describe.skip(`a fresh Effect 4.1 app, on Node 22 (skipped: ${effect4App.reason})`, () => {
    it("installs, runs the v4 server example and the v4 \"Tests of your own\" snippet", () => {})
  })
}
