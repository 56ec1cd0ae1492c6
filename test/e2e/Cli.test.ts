import { afterEach, describe, expect, it } from "@effect/vitest"
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs"
import * as TokenEndpoint from "../../src/testing/TokenEndpoint.js"
import { chatgptJson, idToken, secrets } from "../support/fixtures.js"
import { cleanup, endpoint, spawnScript, tempHome } from "../support/processes.js"

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

const allSecrets = Object.values(secrets)

describe("effect-auth, the example CLI", () => {
  it("status of nobody: exit 1, human and JSON output", async () => {
    const home = tempHome()
    const human = await run(home, ["status"])
    expect(human).toMatchObject({ code: 1, stdout: "Not signed in\n" })
    const json = await run(home, ["status", "--json"])
    expect(json.code).toBe(1)
    expect(JSON.parse(json.stdout)).toEqual({
      status: "loggedOut",
      authMethod: null,
      email: null,
      planType: null,
      reason: null,
      retryAt: null,
      lastRefresh: null
    })
  })

  it("login --api-key-stdin on a machine with no CODEX_HOME yet, then status; the key is printed only with --include-token", async () => {
    const home = `${tempHome()}/codex-home-not-yet-created`
    const login = await run(home, ["login", "--api-key-stdin"], { stdin: `${secrets.apiKey}\n` })
    expect(login.code).toBe(0)
    expect(login.stdout).toBe("Signed in with an API key\n")
    expect(statSync(`${home}/auth.json`).mode & 0o777).toBe(0o600)
    expect(statSync(home).mode & 0o777).toBe(0o700)
    const quiet = await run(home, ["status", "--json"])
    expect(quiet.code).toBe(0)
    expect(JSON.parse(quiet.stdout)).toMatchObject({ authMethod: "apikey", status: "healthy" })
    expect(quiet.stdout).not.toContain(secrets.apiKey)
    expect(JSON.parse((await run(home, ["status", "--json", "--include-token"])).stdout).authToken).toBe(secrets.apiKey)
    expect((await run(home, ["status", "--include-token"])).stdout).toContain(secrets.apiKey)
  })

  it("login --tokens-file accepts a tokens object or a whole auth.json", async () => {
    const home = tempHome()
    const file = `${home}/tokens.json`
    writeFileSync(file, JSON.stringify({ id_token: idToken, access_token: secrets.access, refresh_token: secrets.refresh }))
    const login = await run(home, ["login", "--tokens-file", file])
    expect(login.code).toBe(0)
    expect(login.stdout).toContain("ada@example.com")
    const status = JSON.parse((await run(home, ["status", "--json"])).stdout)
    expect(status).toMatchObject({ authMethod: "chatgpt", email: "ada@example.com", planType: "plus", status: "healthy" })
    writeFileSync(file, JSON.stringify(chatgptJson({ refreshToken: "other-refresh" })))
    expect((await run(home, ["login", "--tokens-file", file])).code).toBe(0)
    expect(JSON.parse(readFileSync(`${home}/auth.json`, "utf8")).tokens.refresh_token).toBe("other-refresh")
    writeFileSync(file, "{}")
    const bad = await run(home, ["login", "--tokens-file", file])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain("does not hold id_token")
  })

  it("a dead refresh token: status --refresh and refresh exit 1 and say to sign in again; no token printed", async () => {
    const home = tempHome()
    const tokens = await endpoint(TokenEndpoint.codedError(401, "refresh_token_reused"))
    writeFileSync(`${home}/auth.json`, JSON.stringify(chatgptJson({ now: Date.now() })))
    const status = await run(home, ["status", "--json", "--refresh"], { tokenUrl: tokens.url })
    expect(status.code).toBe(1)
    expect(JSON.parse(status.stdout)).toMatchObject({ authMethod: "chatgpt", status: "poisoned", reason: "reused" })
    const human = await run(home, ["status", "--refresh"], { tokenUrl: tokens.url })
    expect(human.stdout).toContain("sign in again")
    const refresh = await run(home, ["refresh"], { tokenUrl: tokens.url })
    expect(refresh.code).toBe(1)
    expect(refresh.stderr).toContain("already used")
    for (const output of [status, human, refresh]) {
      for (const secret of allSecrets) expect(output.stdout + output.stderr).not.toContain(secret)
    }
  })

  it("logout removes the credentials", async () => {
    const home = tempHome()
    writeFileSync(`${home}/auth.json`, JSON.stringify(chatgptJson()))
    expect(await run(home, ["logout"])).toMatchObject({ code: 0, stdout: "Signed out.\n" })
    expect(existsSync(`${home}/auth.json`)).toBe(false)
    expect((await run(home, ["status"])).code).toBe(1)
  })

  it("bad usage exits 2; --help works for every command", async () => {
    const home = tempHome()
    expect((await run(home, ["frobnicate"])).code).toBe(2)
    expect((await run(home, ["status", "--nope"])).code).toBe(2)
    expect((await run(home, ["login", "--port", "not-a-port"])).code).toBe(2)
    for (const command of [[], ["status"], ["login"], ["logout"], ["refresh"], ["watch"]]) {
      const help = await run(home, [...command, "--help"])
      expect(help.code).toBe(0)
      expect(help.stdout).toContain("USAGE")
    }
  })

  it("watch prints each change until interrupted", async () => {
    const home = tempHome()
    const watch = spawnScript("effect-auth", ["watch", "--json"], { HOME: home, CODEX_HOME: home })
    await waitForLines(watch.stdout, 1)
    // The folder watch starts just after the first line: write until it is seen.
    for (let attempt = 0; ; attempt++) {
      writeFileSync(`${home}/auth.json`, JSON.stringify({ OPENAI_API_KEY: secrets.apiKey, attempt }))
      if (await waitForLines(watch.stdout, 2, 1_000).then(() => true, () => false)) break
      if (attempt === 5) throw new Error(`watch saw no change: ${watch.stdout()}`)
    }
    watch.child.kill("SIGINT")
    await watch.exited
    const states = watch.stdout().trim().split("\n").map((line) => JSON.parse(line))
    // The vocabulary of status --json.
    expect(states.map((s) => [s.status, s.authMethod]).slice(0, 2)).toEqual([["loggedOut", null], ["healthy", "apikey"]])
    expect(watch.stdout()).not.toContain(secrets.apiKey)
  })
})

const waitForLines = async (stdout: () => string, count: number, timeoutMs = 10_000) => {
  for (let waited = 0; stdout().trim().split("\n").filter(Boolean).length < count; waited += 20) {
    if (waited > timeoutMs) throw new Error(`waited for ${count} lines, got: ${stdout()}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
