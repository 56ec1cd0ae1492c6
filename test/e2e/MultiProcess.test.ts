import { afterEach, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync, writeFileSync } from "node:fs"
import * as TokenEndpoint from "../../src/testing/TokenEndpoint.js"
import { chatgptJson, idToken, secrets } from "../support/fixtures.js"
import { appServer, cleanup, endpoint, type RunningProcess, spawnScript, tempHome } from "../support/processes.js"
import { expectRotationRace, killWhileWriting } from "../support/stress.js"

afterEach(cleanup)

const servers = async (count: number, home: string, tokenUrl: string, env: Record<string, string> = {}) =>
  Promise.all(Array.from({ length: count }, () => appServer({ codexHome: home, tokenUrl, env })))

const poll = (server: RunningProcess, refreshToken = true) =>
  server.request("getAuthStatus", { includeToken: true, refreshToken }).then((m) => m.result)

const pollAll = (all: ReadonlyArray<RunningProcess>, times: number) =>
  Promise.all(all.map(async (server) => {
    const answers: Array<any> = []
    for (let i = 0; i < times; i++) answers.push(await poll(server))
    return answers
  }))

describe("several app servers on one CODEX_HOME act as one", () => {
  it("4 processes × 20 polls on a dead refresh token: 1 request in total", async () => {
    const tokens = await endpoint(TokenEndpoint.codedError(401, "refresh_token_reused"))
    const home = tempHome()
    writeFileSync(`${home}/auth.json`, JSON.stringify(chatgptJson({ now: Date.now() })))
    const all = await servers(4, home, tokens.url)
    const answers = (await pollAll(all, 20)).flat()
    expect(answers.every((a) => a.authMethod === "chatgpt" && a.authToken === null)).toBe(true)
    expect(await tokens.count()).toBe(1)
    expect(JSON.parse(readFileSync(`${home}/auth-refresh-state.json`, "utf8"))).toMatchObject({
      state: "poisoned",
      reason: "reused"
    })
  })

  it("a 503 with Retry-After: one process asks, the others read its cooldown and wait too", async () => {
    const tokens = await endpoint(TokenEndpoint.oauthError(503, "temporarily_unavailable", { "retry-after": "3600" }))
    const home = tempHome()
    writeFileSync(`${home}/auth.json`, JSON.stringify(chatgptJson({ now: Date.now() })))
    const all = await servers(4, home, tokens.url)
    const answers = (await pollAll(all, 20)).flat()
    // One shared cooldown (an hour): 80 polls by 4 processes, 1 request; the cached token is served throughout.
    expect(await tokens.count()).toBe(1)
    expect(answers.every((a) => a.authToken === secrets.access)).toBe(true)
    const shared = JSON.parse(readFileSync(`${home}/auth-refresh-state.json`, "utf8"))
    expect(shared).toMatchObject({ state: "cooling-down" })
  })

  it("rotating refresh tokens: 4 stale processes polling at once for 10 rounds cause no refresh_token_reused", () =>
    expectRotationRace({ processes: 4, rounds: 10 }))

  it("a process killed with SIGKILL while holding the refresh lock: the kernel frees it, the others carry on at once", async () => {
    const tokens = await endpoint(() => Effect.never)
    const home = tempHome()
    writeFileSync(`${home}/auth.json`, JSON.stringify(chatgptJson({ now: Date.now() })))
    const [holder, other] = await servers(2, home, tokens.url)
    holder!.send({ id: "stuck", method: "getAuthStatus", params: { refreshToken: true } })
    await tokens.received(1)
    holder!.child.kill("SIGKILL")
    await holder!.exited
    await tokens.setBehaviour(await Effect.runPromise(TokenEndpoint.rotating(secrets.refresh)))
    const answer = await poll(other!)
    expect(answer.authToken).not.toBe(secrets.access)
    expect(await tokens.count()).toBe(2)
    // flock: the lock files stay, empty; nothing was broken.
    expect(readFileSync(`${home}/auth.json.refresh.lock`, "utf8")).toBe("")
    expect(readFileSync(`${home}/auth.json.lock`, "utf8")).toBe("")
  })

  it("a sign-in through the CLI clears the poison in every server: new token served, account/updated sent", async () => {
    const tokens = await endpoint(TokenEndpoint.codedError(401, "refresh_token_reused"))
    const home = tempHome()
    writeFileSync(`${home}/auth.json`, JSON.stringify(chatgptJson({ now: Date.now() })))
    const all = await servers(3, home, tokens.url)
    await pollAll(all, 3)
    expect(await tokens.count()).toBe(1)
    const file = `${home}/new-tokens.json`
    writeFileSync(
      file,
      JSON.stringify({ id_token: idToken, access_token: "fresh-access", refresh_token: "fresh-refresh" })
    )
    const before = all.map((server) => server.messages.length)
    const cli = spawnScript("effect-auth", ["login", "--tokens-file", file], { HOME: home, CODEX_HOME: home })
    expect(await cli.close()).toBe(0)
    for (const [i, server] of all.entries()) {
      const updated = await server.waitFor(
        (m) => m.method === "account/updated" && server.messages.indexOf(m) >= before[i]!,
        5_000
      )
      expect(updated.params).toEqual({ authMode: "chatgpt", planType: "plus" })
      expect((await poll(server)).authToken).toBe("fresh-access")
    }
    expect(await tokens.count()).toBe(1)
  })
})

describe("a process killed mid-write never leaves a partial auth.json", () => {
  // A sample; `npm run soak` kills 200.
  it("20 kills at seeded random moments: the file is always a whole document", async () => {
    const result = await killWhileWriting({ home: tempHome(), rounds: 20, parallel: 4, seed: 15, maxDelayMs: 15 })
    expect(result).toEqual({ checked: 20, broken: [] })
  })
})
