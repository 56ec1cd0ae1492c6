// Replicas on one PostgreSQL database: separate app-server processes, one token endpoint.
// The replicas are started once for the file; each test gives them new credentials (a new
// snapshot starts healthy everywhere) and a new endpoint behaviour.
import { HttpServerResponse } from "@effect/platform"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { writeFileSync } from "node:fs"
import * as TokenEndpoint from "../../src/testing/TokenEndpoint.js"
import { freshDatabase, query } from "../support/database.js"
import { chatgptJson, idToken } from "../support/fixtures.js"
import { putCredentials as putRows } from "../support/putCredentials.js"
import { appServer, cleanup, endpoint, type Endpoint, type RunningProcess, spawnScript, tempHome } from "../support/processes.js"

let url: string
let tokens: Endpoint
let home: string
let replicas: Array<RunningProcess>
let round = 0

const env = () => ({
  EFFECT_AUTH_DATABASE_URL: url,
  EFFECT_AUTH_MIN_REFRESH_INTERVAL: "0 millis",
  EFFECT_AUTH_BACKOFF_BASE: "100 millis",
  EFFECT_AUTH_REFRESH_TIMEOUT: "5 seconds"
})

beforeAll(async () => {
  url = await freshDatabase("replicas")
  tokens = await endpoint(TokenEndpoint.codedError(500, "server_error"))
  home = tempHome()
  replicas = await Promise.all(Array.from({ length: 4 }, () => appServer({ codexHome: home, tokenUrl: tokens.url, env: env() })))
}, 30_000)
afterAll(cleanup)

const poll = (server: RunningProcess, refreshToken = true) =>
  server.request("getAuthStatus", { includeToken: true, refreshToken }).then((m) => m.result)

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Writes credentials behind the replicas' backs, as another replica would. */
const putCredentials = (database: string, entries: Parameters<typeof putRows>[1]) =>
  putRows((sql, params) => query(database, sql, [...params]), entries)

let lastAccess: string | null = null

/**
 * New credentials for every replica (a new snapshot: healthy everywhere). `before` sets the
 * endpoint up for them first: a stale credential is refreshed as soon as a replica adopts it.
 */
const freshCredential = async (
  options: Parameters<typeof chatgptJson>[0],
  before: (refreshToken: string) => Promise<void> = async () => undefined
) => {
  const refreshToken = `rt-start-${++round}`
  // A distinct access token each round, a JWT expiring after `expiresIn` (1 hour by default).
  const exp = Math.floor((Date.now() + (options?.expiresIn ?? 3_600_000)) / 1000)
  const accessToken = TokenEndpoint.unsignedJwt({ exp, round })
  const json = chatgptJson({ now: Date.now(), refreshedAgo: 0, refreshToken, accessToken, ...options }) as any
  const access: string = json.tokens.access_token
  await before(refreshToken)
  await putCredentials(url, [["default", json]])
  const previous = lastAccess
  lastAccess = access
  for (const server of replicas) {
    // Bounded: a replica serves the new credential (or what it refreshed it to) once it heard the notification.
    for (let i = 0;; i++) {
      const token = (await poll(server, false)).authToken
      if (token !== null && token !== previous) break
      if (i > 500) throw new Error("a replica never adopted the new credential")
      await sleep(10)
    }
  }
  return { refreshToken, access }
}

describe("replicas on one PostgreSQL database act as one", () => {
  it("4 replicas × 20 polls on a dead refresh token: 1 request in total", async () => {
    await tokens.setBehaviour(TokenEndpoint.codedError(401, "refresh_token_reused"))
    await freshCredential({})
    const before = await tokens.count()
    const answers = (await Promise.all(replicas.map(async (server) => {
      const mine = []
      for (let i = 0; i < 20; i++) mine.push(await poll(server))
      return mine
    }))).flat()
    expect(answers.every((a) => a.authMethod === "chatgpt" && a.authToken === null)).toBe(true)
    expect((await tokens.count()) - before).toBe(1)
    const [row] = await query<{ health: string }>(url, "SELECT health FROM effect_auth_credentials")
    expect(JSON.parse(row!.health)).toMatchObject({ state: "poisoned", reason: "reused" })
  })

  it("an outage: the replicas share one backoff schedule, and all recover after it", async () => {
    await tokens.setBehaviour(TokenEndpoint.codedError(503, "unavailable"))
    const { access } = await freshCredential({})
    const before = await tokens.count()
    // 2 s of polling (a 10 s outage at a tenth of the backoff base): one schedule of full-jitter
    // exponential backoff from 100 ms allows about 5 attempts; four independent ones about 20.
    const until = Date.now() + 2_000
    const answers = (await Promise.all(replicas.map(async (server) => {
      const mine = []
      while (Date.now() < until) {
        mine.push(await poll(server))
        await sleep(20)
      }
      return mine
    }))).flat()
    const attempts = (await tokens.count()) - before
    expect(attempts).toBeGreaterThanOrEqual(1)
    expect(attempts).toBeLessThanOrEqual(10)
    expect(answers.every((a) => a.authToken === access)).toBe(true)
    // The outage ends: every replica gets the one new token after the shared cooldown.
    await tokens.setBehaviour(await Effect.runPromise(TokenEndpoint.rotating(`rt-start-${round}`)))
    const recovered = async (server: RunningProcess) => {
      for (let i = 0; i < 300; i++) {
        const answer = await poll(server)
        if (answer.authToken !== access) {
          lastAccess = answer.authToken
          return answer.authToken
        }
        await sleep(50)
      }
      throw new Error("a replica never recovered")
    }
    const finals = await Promise.all(replicas.map(recovered))
    expect(new Set(finals).size).toBe(1)
  })

  it("rotating refresh tokens, 4 stale replicas, 10 rounds: no refresh_token_reused, all end on the newest", async () => {
    const before = (await tokens.requests()).length
    // Every access token it gives is stale at once (60 s < the 5 min window).
    const { refreshToken } = await freshCredential({ expiresIn: 30_000 }, async (refreshToken) =>
      tokens.setBehaviour(await Effect.runPromise(TokenEndpoint.rotating(refreshToken, 60))))
    for (let r = 0; r < 10; r++) await Promise.all(replicas.map((server) => poll(server, r % 2 === 0)))
    // Each replica serves what the database holds (a stale token is refreshed by the poll itself, under the lock).
    const current = async () =>
      JSON.parse((await query<{ document: string }>(url, "SELECT document FROM effect_auth_credentials"))[0]!.document)
    for (const server of replicas) expect((await poll(server, false)).authToken).toBe((await current()).tokens.access_token)
    const requests = (await tokens.requests()).slice(before)
    expect(requests.length).toBeGreaterThanOrEqual(10)
    // Every refresh presented the newest refresh token: none reused (the endpoint would have said so), none unknown.
    expect(requests.map((r) => r.fields.refresh_token)).toEqual([refreshToken, ...requests.slice(1).map((_, i) => `rt-${i + 1}`)])
    expect((await current()).tokens.refresh_token).toBe(`rt-${requests.length}`)
  })

  it("a sign-in through the CLI on one database: every replica serves the new token", async () => {
    await tokens.setBehaviour(TokenEndpoint.codedError(401, "refresh_token_reused"))
    await freshCredential({})
    await Promise.all(replicas.map((server) => poll(server)))
    const file = `${home}/new-tokens.json`
    writeFileSync(file, JSON.stringify({ id_token: idToken, access_token: "fresh-access", refresh_token: "fresh-refresh" }))
    const before = replicas.map((server) => server.messages.length)
    const cli = spawnScript("effect-auth", ["login", "--tokens-file", file], { HOME: home, CODEX_HOME: home, ...env() })
    expect(await cli.close()).toBe(0)
    for (const [i, server] of replicas.entries()) {
      const updated = await server.waitFor(
        (m) => m.method === "account/updated" && server.messages.indexOf(m) >= before[i]!,
        5_000
      )
      expect(updated.params).toEqual({ authMode: "chatgpt", planType: "plus" })
      expect((await poll(server, false)).authToken).toBe("fresh-access")
    }
    lastAccess = "fresh-access"
  })

  it("a replica SIGKILLed while it holds the refresh lock: another refreshes at once", async () => {
    const { refreshToken } = await freshCredential({})
    await tokens.setBehaviour(() => Effect.never)
    const before = await tokens.count()
    const [holder, other] = replicas as [RunningProcess, RunningProcess]
    holder.send({ id: "stuck", method: "getAuthStatus", params: { refreshToken: true } })
    while ((await tokens.count()) === before) await sleep(10)
    const [locks] = await query<{ n: string }>(url, "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'")
    expect(Number(locks!.n)).toBe(1)
    holder.child.kill("SIGKILL")
    await holder.exited
    await tokens.setBehaviour(await Effect.runPromise(TokenEndpoint.rotating(refreshToken)))
    const answer = await poll(other)
    expect(answer.authToken).not.toBeNull()
    expect(answer.authToken).not.toBe(`access-start-${round}`)
    expect((await tokens.count()) - before).toBe(2)
    replicas.splice(0, 1)
  })
})

describe("many credentials on many replicas", () => {
  // 40 keys are enough to show one refresh per key however many replicas contend for it (each key is
  // contended by all four at once); the fleet's throughput at 100 keys and more is measured in bench/.
  // The bounds are a guard against a hang, not a speed check: generous for a machine under load.
  it("40 credentials × 4 replicas, each credential stale once: 40 requests, not 160", async () => {
    const credentials = 40
    const fleetUrl = await freshDatabase("fleet")
    const presented: Array<string> = []
    const fleetTokens = await endpoint((request) =>
      Effect.sync(() => {
        presented.push(request.fields.refresh_token ?? "")
        return HttpServerResponse.unsafeJson({
          token_type: "Bearer",
          access_token: TokenEndpoint.unsignedJwt({ exp: Math.floor(Date.now() / 1000) + 3600, rt: request.fields.refresh_token }),
          refresh_token: `${request.fields.refresh_token}-next`,
          expires_in: 3600
        })
      })
    )
    // The replicas create the schema as they start.
    const fleet = Array.from({ length: 4 }, () =>
      spawnScript("fleet", [], {
        EFFECT_AUTH_DATABASE_URL: fleetUrl,
        CODEX_REFRESH_TOKEN_URL_OVERRIDE: fleetTokens.url,
        FLEET_KEYS: String(credentials)
      }))
    for (const replica of fleet) {
      for (let i = 0; !replica.stdout().includes("ready"); i++) {
        if (i > 6000) throw new Error(`a fleet replica did not start: ${replica.stderr()}`)
        await sleep(10)
      }
    }
    await putCredentials(
      fleetUrl,
      Array.from({ length: credentials }, (_, i) => [`fleet-${i}`, chatgptJson({ now: Date.now(), expiresIn: 60_000, refreshToken: `fleet-rt-${i}` })])
    )
    const before = fleet.map((replica) => replica.messages.length)
    for (const replica of fleet) replica.write("poll\n")
    const served = await Promise.all(
      fleet.map((replica, i) => replica.waitFor((m) => Array.isArray(m) && fleet[i]!.messages.indexOf(m) >= before[i]!, 90_000))
    ) as unknown as Array<Array<string | null>>
    expect(await fleetTokens.count()).toBe(credentials)
    expect(new Set(presented).size).toBe(credentials)
    // Every replica serves, for every key, the access token of that key's one refresh.
    const refreshedWith = (token: string | null) =>
      token === null ? null : JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8")).rt
    for (const tokensServed of served) {
      expect(tokensServed.map(refreshedWith)).toEqual(Array.from({ length: credentials }, (_, i) => `fleet-rt-${i}`))
    }
  }, 120_000)
})
