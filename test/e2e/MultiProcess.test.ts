import { afterEach, describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { readFileSync, writeFileSync } from "node:fs"
import * as AuthDocument from "../../src/AuthDocument.js"
import * as TokenEndpoint from "../../src/testing/TokenEndpoint.js"
import { chatgptJson, idToken, secrets } from "../support/fixtures.js"
import { appServer, cleanup, endpoint, type RunningProcess, spawnScript, tempHome } from "../support/processes.js"

afterEach(cleanup)

const servers = async (count: number, home: string, tokenUrl: string, env: Record<string, string> = {}) =>
  Promise.all(Array.from({ length: count }, () => appServer({ codexHome: home, tokenUrl, env })))

const poll = (server: RunningProcess, refreshToken = true) =>
  server.request("getAuthStatus", { includeToken: true, refreshToken }).then((m) => m.result)

const pollAll = (all: ReadonlyArray<RunningProcess>, times: number, gapMs = 0) =>
  Promise.all(all.map(async (server) => {
    const answers: Array<any> = []
    for (let i = 0; i < times; i++) {
      answers.push(await poll(server))
      if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs))
    }
    return answers
  }))

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe("several app servers on one CODEX_HOME act as one", () => {
  it("4 processes × 20 polls on a dead refresh token: 1 request in total", async () => {
    const tokens = await endpoint(TokenEndpoint.codedError(401, "refresh_token_reused"))
    const home = tempHome()
    writeFileSync(`${home}/auth.json`, JSON.stringify(chatgptJson({ now: Date.now() })))
    const all = await servers(4, home, tokens.url)
    const answers = (await pollAll(all, 20)).flat()
    expect(answers.every((a) => a.authMethod === "chatgpt" && a.authToken === null)).toBe(true)
    expect(await tokens.count()).toBe(1)
    expect(JSON.parse(readFileSync(`${home}/auth-refresh-state.json`, "utf8"))).toMatchObject({ state: "poisoned", reason: "reused" })
  })

  it("during a 500 outage they share one backoff schedule", async () => {
    const tokens = await endpoint(TokenEndpoint.codedError(500, "server_error"))
    const home = tempHome()
    writeFileSync(`${home}/auth.json`, JSON.stringify(chatgptJson({ now: Date.now() })))
    const all = await servers(4, home, tokens.url)
    const answers = (await pollAll(all, 40, 25)).flat()
    // About 1.5 s of polling by 4 processes: one schedule allows a handful of attempts; four would allow four times as many.
    expect(await tokens.count()).toBeGreaterThanOrEqual(1)
    expect(await tokens.count()).toBeLessThanOrEqual(7)
    expect(answers.every((a) => a.authToken === secrets.access)).toBe(true)
  })

  it("rotating refresh tokens: 4 stale processes polling at once for 10 rounds cause no refresh_token_reused", async () => {
    const tokens = await endpoint(TokenEndpoint.rotating(secrets.refresh, 60))
    const home = tempHome()
    writeFileSync(`${home}/auth.json`, JSON.stringify(chatgptJson({ now: Date.now(), expiresIn: 30_000 })))
    // Every access token the endpoint gives is stale (60 s < 5 min window) and may be refreshed at once.
    const all = await servers(4, home, tokens.url, { EFFECT_AUTH_MIN_REFRESH_INTERVAL: "0 millis" })
    for (let round = 0; round < 10; round++) await Promise.all(all.map((server) => poll(server, round % 2 === 0)))
    // Let every watcher see the last write, then ask without refreshing.
    await sleep(300)
    const finals = await Promise.all(all.map((server) => server.request("getAuthStatus", { includeToken: true, refreshToken: false })))
    const requests = await tokens.requests()
    expect(requests.length).toBeGreaterThanOrEqual(10)
    // Every refresh presented the newest refresh token: none was reused (the endpoint would have said so), none unknown.
    expect(requests.map((r) => r.fields.refresh_token)).toEqual([secrets.refresh, ...requests.slice(1).map((_, i) => `rt-${i + 1}`)])
    const onDisk = JSON.parse(readFileSync(`${home}/auth.json`, "utf8"))
    expect(onDisk.tokens.refresh_token).toBe(`rt-${requests.length}`)
    expect(finals.map((f) => f.result.authToken)).toEqual(Array(4).fill(onDisk.tokens.access_token))
  })

  it("a process killed with SIGKILL while holding the refresh lock: the kernel frees it, the others carry on at once", async () => {
    const tokens = await endpoint(() => Effect.never)
    const home = tempHome()
    writeFileSync(`${home}/auth.json`, JSON.stringify(chatgptJson({ now: Date.now() })))
    const [holder, other] = await servers(2, home, tokens.url)
    holder!.send({ id: "stuck", method: "getAuthStatus", params: { refreshToken: true } })
    while ((await tokens.count()) === 0) await sleep(10)
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
    writeFileSync(file, JSON.stringify({ id_token: idToken, access_token: "fresh-access", refresh_token: "fresh-refresh" }))
    const before = all.map((server) => server.messages.length)
    const cli = spawnScript("effect-auth", ["login", "--tokens-file", file], { HOME: home, CODEX_HOME: home })
    expect(await cli.close()).toBe(0)
    for (const [i, server] of all.entries()) {
      const updated = await server.waitFor((m) => m.method === "account/updated" && server.messages.indexOf(m) >= before[i]!, 5_000)
      expect(updated.params).toEqual({ authMode: "chatgpt", planType: "plus" })
      expect((await poll(server)).authToken).toBe("fresh-access")
    }
    expect(await tokens.count()).toBe(1)
  })
})

describe("a process killed mid-write never leaves a partial auth.json", () => {
  it("200 kills at random moments: the file is always a whole document", async () => {
    const home = tempHome()
    const rounds = 200
    const parallel = 4
    let checked = 0
    await Promise.all(Array.from({ length: parallel }, async (_, lane) => {
      const laneHome = `${home}/lane-${lane}`
      for (let i = lane; i < rounds; i += parallel) {
        const writer = spawnScript("writer", [], { HOME: laneHome, CODEX_HOME: laneHome })
        for (let waited = 0; !writer.stdout().includes("ready"); waited += 2) {
          if (waited > 15_000) throw new Error(`the writer did not start: ${writer.stderr()}`)
          await sleep(2)
        }
        await sleep(Math.random() * 15)
        writer.child.kill("SIGKILL")
        await writer.exited
        const text = readFileSync(`${laneHome}/auth.json`, "utf8")
        expect(Either.isRight(AuthDocument.parse(text))).toBe(true)
        checked++
      }
    }))
    expect(checked).toBe(rounds)
  }, 120_000)
})
