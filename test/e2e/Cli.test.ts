/**
 * A few true runs of the bundled `effect-auth` binary: the process itself (exit codes,
 * stdin, files and their modes, real HTTP, signals). The commands' behaviour is tested
 * in process, in test/Cli.test.ts.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { statSync, writeFileSync } from "node:fs"
import * as TokenEndpoint from "../../src/testing/TokenEndpoint.js"
import { chatgptJson, secrets } from "../support/fixtures.js"
import { cleanup, endpoint, type RunningProcess, spawnScript, tempHome } from "../support/processes.js"

afterEach(cleanup)

const run = async (home: string, args: ReadonlyArray<string>, options: { stdin?: string; tokenUrl?: string } = {}) => {
  const cli = spawnScript("effect-auth", args, {
    HOME: home,
    CODEX_HOME: home,
    ...(options.tokenUrl === undefined ? {} : { CODEX_REFRESH_TOKEN_URL_OVERRIDE: options.tokenUrl })
  })
  if (options.stdin !== undefined) cli.write(options.stdin)
  const code = await cli.close()
  return { code, stdout: cli.stdout(), stderr: cli.stderr() }
}

/** Resolves when the process's standard error matches `pattern`. */
const stderrMatches = (cli: RunningProcess, pattern: RegExp) =>
  new Promise<void>((resolve, reject) => {
    const check = () => {
      if (!pattern.test(cli.stderr())) return
      cli.child.stderr.off("data", check)
      resolve()
    }
    cli.child.stderr.on("data", check)
    cli.child.on("close", () => reject(new Error(`exited; stderr: ${cli.stderr()}`)))
    check()
  })

describe("effect-auth, the bundled binary", () => {
  it("login prints its instructions without Info logs between them; EFFECT_AUTH_LOG_LEVEL or --log-level brings them back", async () => {
    const runs: ReadonlyArray<readonly [ReadonlyArray<string>, string | undefined, boolean]> = [
      [[], undefined, false],
      [[], "Info", true],
      [["--log-level", "info"], undefined, true]
    ]
    for (const [flags, level, logged] of runs) {
      const home = tempHome()
      const cli = spawnScript("effect-auth", [...flags, "login", "--no-browser"], {
        HOME: home,
        CODEX_HOME: home,
        EFFECT_AUTH_LOGIN_PORTS: "0",
        EFFECT_AUTH_LOG_LEVEL: level
      })
      await stderrMatches(cli, /Waiting for the browser/)
      cli.child.kill("SIGINT")
      expect(await cli.exited).toBe(130)
      const stderr = cli.stderr()
      expect(stderr).toContain("To sign in, open this link in a browser on this computer:")
      expect(stderr).toContain("Sign-in canceled; nothing was saved.")
      expect({ flags, level, logged: stderr.includes("level=INFO") }).toEqual({ flags, level, logged })
    }
  })

  it("logout twice: the second says there was nothing to sign out, and exits 0", async () => {
    const home = tempHome()
    writeFileSync(`${home}/auth.json`, JSON.stringify({ OPENAI_API_KEY: secrets.apiKey }))
    expect(await run(home, ["logout"])).toMatchObject({ code: 0, stdout: "Signed out.\n" })
    expect(await run(home, ["logout"])).toMatchObject({ code: 0, stdout: "Not signed in; nothing to sign out.\n" })
  })

  it("status of nobody exits 1; an unknown command exits 2; --help exits 0", async () => {
    const home = tempHome()
    expect(await run(home, ["status"])).toMatchObject({
      code: 1,
      stdout: `Not signed in (no credentials in ${home}/auth.json). Sign in with: effect-auth login\n`
    })
    expect((await run(home, ["frobnicate"])).code).toBe(2)
    const help = await run(home, ["--help"])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain("USAGE")
  })

  it("login --api-key-stdin on a machine with no CODEX_HOME yet: 0600 in a 0700 folder; status reads it back, the key only with --include-token", async () => {
    const home = `${tempHome()}/codex-home-not-yet-created`
    const login = await run(home, ["login", "--api-key-stdin"], { stdin: `${secrets.apiKey}\n` })
    expect(login).toMatchObject({ code: 0, stdout: "Signed in with an API key\n" })
    expect(statSync(`${home}/auth.json`).mode & 0o777).toBe(0o600)
    expect(statSync(home).mode & 0o777).toBe(0o700)
    const quiet = await run(home, ["status", "--json"])
    expect(quiet.code).toBe(0)
    expect(JSON.parse(quiet.stdout)).toMatchObject({ authMethod: "apikey", status: "healthy" })
    expect(quiet.stdout).not.toContain(secrets.apiKey)
    expect(JSON.parse((await run(home, ["status", "--json", "--include-token"])).stdout).authToken).toBe(secrets.apiKey)
  })

  it("a dead refresh token over real HTTP: status --refresh exits 1 and the snapshot is poisoned; no token printed", async () => {
    const home = tempHome()
    const tokens = await endpoint(TokenEndpoint.codedError(401, "refresh_token_reused"))
    writeFileSync(`${home}/auth.json`, JSON.stringify(chatgptJson({ now: Date.now() })))
    const status = await run(home, ["status", "--json", "--refresh"], { tokenUrl: tokens.url })
    expect(status.code).toBe(1)
    expect(JSON.parse(status.stdout)).toMatchObject({ authMethod: "chatgpt", status: "poisoned", reason: "reused" })
    expect(await tokens.count()).toBe(1)
    for (const secret of Object.values(secrets)) expect(status.stdout + status.stderr).not.toContain(secret)
  })

  it("watch prints each change until interrupted", async () => {
    const home = tempHome()
    const watch = spawnScript("effect-auth", ["watch", "--json"], { HOME: home, CODEX_HOME: home })
    const lines = (count: number, timeoutMs?: number) => watch.waitFor(() => watch.messages.length >= count, timeoutMs)
    await lines(1)
    // The folder watch starts just after the first line: write until a change is printed.
    for (let attempt = 0;; attempt++) {
      writeFileSync(`${home}/auth.json`, JSON.stringify({ OPENAI_API_KEY: secrets.apiKey, attempt }))
      if (await lines(2, 1_000).then(() => true, () => false)) break
      if (attempt === 10) throw new Error(`watch saw no change: ${watch.stdout()}`)
    }
    watch.child.kill("SIGINT")
    await watch.exited
    const states = watch.stdout().trim().split("\n").map((line) => JSON.parse(line))
    // The vocabulary of status --json.
    expect(states.map((s) => [s.status, s.authMethod]).slice(0, 2)).toEqual([["loggedOut", null], [
      "healthy",
      "apikey"
    ]])
    expect(watch.stdout()).not.toContain(secrets.apiKey)
  })
})
