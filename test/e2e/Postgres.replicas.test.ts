// Replicas on one PostgreSQL database: separate app-server processes, one token endpoint.
// The replicas are started once for the file; each test gives them new credentials (a new
// snapshot starts healthy everywhere) and a new endpoint behaviour.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { writeFileSync } from "node:fs"
import { connect, createServer } from "node:net"
import pg from "pg"
import * as TokenEndpoint from "../../src/testing/TokenEndpoint.js"
import { freshDatabase, query } from "../support/database.js"
import { issuing } from "../support/endpoint.js"
import { chatgptJson, idToken } from "../support/fixtures.js"
import {
  appServer,
  cleanup,
  type Endpoint,
  endpoint,
  type RunningProcess,
  saysOnStderr,
  spawnScript,
  tempHome
} from "../support/processes.js"
import { putCredentials as putRows } from "../support/putCredentials.js"

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
  replicas = await Promise.all(
    Array.from({ length: 4 }, () => appServer({ codexHome: home, tokenUrl: tokens.url, env: env() }))
  )
}, 30_000)
afterAll(cleanup)

const poll = (server: RunningProcess, refreshToken = true) =>
  server.request("getAuthStatus", { includeToken: true, refreshToken }).then((m) => m.result)

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Writes credentials behind the replicas' backs, as another replica would. */
const putCredentials = (database: string, entries: Parameters<typeof putRows>[1]) =>
  putRows((sql, params) => query(database, sql, [...params]), entries)

let lastAccess: string | null = null

/** The endpoint rotates from `refreshToken`, but holds every answer until the returned function is called. */
const heldAnswers = async (refreshToken: string) => {
  const gate = Effect.runSync(Deferred.make<void>())
  const rotate = await Effect.runPromise(TokenEndpoint.rotating(refreshToken))
  await tokens.setBehaviour((request) => Effect.zipRight(Deferred.await(gate), rotate(request)))
  return () => Effect.runPromise(Deferred.succeed(gate, undefined))
}

const storedRefreshToken = async (): Promise<string> =>
  JSON.parse((await query<{ document: string }>(url, "SELECT document FROM effect_auth_credentials"))[0]!.document)
    .tokens.refresh_token

/** Resolves once the stored refresh token is `expected`, checked at every change notification (bounded). */
const untilStored = async (expected: string, timeoutMs = 15_000) => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const changed = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the stored refresh token never became ${expected}`)), timeoutMs)
      const check = () =>
        storedRefreshToken().then((stored) => {
          if (stored !== expected) return
          clearTimeout(timer)
          resolve()
        }, reject)
      client.on("notification", check)
      check()
    })
    await client.query("LISTEN effect_auth_changes")
    await changed
  } finally {
    await client.end()
  }
}

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
    // 1 s of polling (a 10 s outage at a tenth of the backoff base): one schedule, retrying every
    // 100 to 110 ms for its first ten failures, allows about 10 attempts; four independent ones about 40.
    const until = Date.now() + 1_000
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
    expect(attempts).toBeLessThanOrEqual(12)
    expect(answers.every((a) => a.authToken === access)).toBe(true)
    // The outage ends: every replica gets a new token after the shared cooldown, and they end on one.
    // (Polls ask for a refresh with no minimum interval: a replica polling after the first refresh
    // was adopted refreshes again, with the newest refresh token; which poll is first is timing.)
    const recovery = (await tokens.requests()).length
    await tokens.setBehaviour(await Effect.runPromise(TokenEndpoint.rotating(`rt-start-${round}`)))
    const recovered = async (server: RunningProcess) => {
      for (let i = 0; i < 300; i++) {
        const answer = await poll(server)
        if (answer.authToken !== access) return answer.authToken
        await sleep(50)
      }
      throw new Error("a replica never recovered")
    }
    await Promise.all(replicas.map(recovered))
    const served = async () =>
      new Set(await Promise.all(replicas.map(async (server) => (await poll(server, false)).authToken)))
    for (let i = 0; (await served()).size !== 1; i++) {
      if (i > 300) throw new Error("the replicas never ended on one token")
      await sleep(20)
    }
    lastAccess = [...(await served())][0]!
    // Every refresh presented the newest refresh token: none reused (the endpoint would have said so).
    const presented = (await tokens.requests()).slice(recovery).map((r) => r.fields.refresh_token)
    expect(presented).toEqual([`rt-start-${round}`, ...presented.slice(1).map((_, i) => `rt-${i + 1}`)])
  })

  it("rotating refresh tokens, 4 stale replicas, 10 rounds: no refresh_token_reused, all end on the newest", async () => {
    const before = (await tokens.requests()).length
    // Every access token it gives is stale at once (60 s < the 5 min window).
    const { refreshToken } = await freshCredential(
      { expiresIn: 30_000 },
      async (refreshToken) => tokens.setBehaviour(await Effect.runPromise(TokenEndpoint.rotating(refreshToken, 60)))
    )
    for (let r = 0; r < 10; r++) await Promise.all(replicas.map((server) => poll(server, r % 2 === 0)))
    // Each replica serves what the database holds (a stale token is refreshed by the poll itself, under the lock).
    const current = async () =>
      JSON.parse((await query<{ document: string }>(url, "SELECT document FROM effect_auth_credentials"))[0]!.document)
    for (const server of replicas) {
      expect((await poll(server, false)).authToken).toBe((await current()).tokens.access_token)
    }
    const requests = (await tokens.requests()).slice(before)
    expect(requests.length).toBeGreaterThanOrEqual(10)
    // Every refresh presented the newest refresh token: none reused (the endpoint would have said so), none unknown.
    expect(requests.map((r) => r.fields.refresh_token)).toEqual([
      refreshToken,
      ...requests.slice(1).map((_, i) => `rt-${i + 1}`)
    ])
    expect((await current()).tokens.refresh_token).toBe(`rt-${requests.length}`)
  })

  it("a sign-in through the CLI on one database: every replica serves the new token", async () => {
    await tokens.setBehaviour(TokenEndpoint.codedError(401, "refresh_token_reused"))
    await freshCredential({})
    await Promise.all(replicas.map((server) => poll(server)))
    const file = `${home}/new-tokens.json`
    writeFileSync(
      file,
      JSON.stringify({ id_token: idToken, access_token: "fresh-access", refresh_token: "fresh-refresh" })
    )
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

  it("the database sessions are lost during a refresh: no other replica sends its refresh token, and the holder saves", async () => {
    const { access, refreshToken } = await freshCredential({})
    const answer = await heldAnswers(refreshToken)
    const before = await tokens.count()
    const [holder, other] = replicas as [RunningProcess, RunningProcess]
    const holding = holder.request("getAuthStatus", { includeToken: true, refreshToken: true })
    await tokens.received(before + 1)
    // Every session of every replica ends, the refresh holder's included (a restart, a failover, a cut).
    await query(
      url,
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    const from = other.stderr().length
    const asking = poll(other)
    // The other replica either waits for the refresh in flight, or sends the same refresh token again.
    await Promise.race([saysOnStderr(other, "Waiting for the refresh lock", from), tokens.received(before + 2)])
    expect(await tokens.count()).toBe(before + 1)
    await answer()
    const refreshed = (await holding).result.authToken
    expect(refreshed).not.toBe(access)
    expect((await asking).authToken).toBe(refreshed)
    expect(await tokens.count()).toBe(before + 1)
    expect(await storedRefreshToken()).toBe("rt-1")
    lastAccess = refreshed
  })

  it("a holder whose lease was taken over does not write over it, says so, keeps its tokens and saves them later", async () => {
    const { access, refreshToken } = await freshCredential({})
    const answer = await heldAnswers(refreshToken)
    const before = await tokens.count()
    const [holder] = replicas as [RunningProcess]
    const from = holder.stderr().length
    const holding = holder.request("getAuthStatus", { includeToken: true, refreshToken: true })
    await tokens.received(before + 1)
    // As if the holder had been silent past its lease, and another replica had taken the lease over.
    await query(
      url,
      `UPDATE effect_auth_leases SET fence = nextval('effect_auth_versions'), holder = 'another replica',
      expires_at = now() + interval '1 hour'`
    )
    await answer()
    const refreshed = (await holding).result.authToken
    await saysOnStderr(holder, "lost the refresh lock before saving", from)
    // Not written while the other replica holds the lease; served from memory meanwhile.
    expect(await storedRefreshToken()).toBe(refreshToken)
    expect(refreshed).not.toBe(access)
    expect((await poll(holder, false)).authToken).toBe(refreshed)
    // The other replica lets go: the holder's retried save goes through.
    await query(
      url,
      `WITH released AS (DELETE FROM effect_auth_leases RETURNING credential_key)
      SELECT pg_notify('effect_auth_leases', credential_key) FROM released`
    )
    await untilStored("rt-1")
    expect(await tokens.count()).toBe(before + 1)
    lastAccess = refreshed
  })

  it("a replica SIGKILLed while it holds the refresh lock: another refreshes once the lease has expired, not before", async () => {
    const { refreshToken } = await freshCredential({})
    await tokens.setBehaviour(() => Effect.never)
    const before = await tokens.count()
    const [holder, other] = replicas as [RunningProcess, RunningProcess]
    holder.send({ id: "stuck", method: "getAuthStatus", params: { refreshToken: true } })
    await tokens.received(before + 1)
    const [leases] = await query<{ n: string }>(url, "SELECT count(*) AS n FROM effect_auth_leases")
    expect(Number(leases!.n)).toBe(1)
    holder.child.kill("SIGKILL")
    await holder.exited
    await tokens.setBehaviour(await Effect.runPromise(TokenEndpoint.rotating(refreshToken)))
    const from = other.stderr().length
    const asking = poll(other)
    await Promise.race([saysOnStderr(other, "Waiting for the refresh lock", from), tokens.received(before + 2)])
    expect(await tokens.count()).toBe(before + 1)
    // The lease expires (its time is the database's: moved here rather than waited for).
    await query(
      url,
      `WITH expired AS (UPDATE effect_auth_leases SET expires_at = now() RETURNING credential_key)
      SELECT pg_notify('effect_auth_leases', credential_key) FROM expired`
    )
    const answer = await asking
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
      Effect.zipRight(Effect.sync(() => presented.push(request.fields.refresh_token ?? "")), issuing(request))
    )
    // The replicas create the schema as they start.
    const fleet = Array.from({ length: 4 }, () =>
      spawnScript("fleet", [], {
        EFFECT_AUTH_DATABASE_URL: fleetUrl,
        CODEX_REFRESH_TOKEN_URL_OVERRIDE: fleetTokens.url,
        FLEET_KEYS: String(credentials)
      }))
    await Promise.all(
      fleet.map((replica) => replica.waitFor((m) => m.method === "<not json>" && m.params === "ready", 60_000))
    )
    await putCredentials(
      fleetUrl,
      Array.from(
        { length: credentials },
        (_, i) => [`fleet-${i}`, chatgptJson({ now: Date.now(), expiresIn: 60_000, refreshToken: `fleet-rt-${i}` })]
      )
    )
    const before = fleet.map((replica) => replica.messages.length)
    for (const replica of fleet) replica.write("poll\n")
    const served = await Promise.all(
      fleet.map((replica, i) =>
        replica.waitFor((m) => Array.isArray(m) && fleet[i]!.messages.indexOf(m) >= before[i]!, 90_000)
      )
    ) as unknown as Array<Array<string | null>>
    expect(await fleetTokens.count()).toBe(credentials)
    expect(new Set(presented).size).toBe(credentials)
    // Every replica serves, for every key, the access token of that key's one refresh.
    const refreshedWith = (token: string | null) =>
      token === null ? null : JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8")).rt
    for (const tokensServed of served) {
      expect(tokensServed.map(refreshedWith)).toEqual(Array.from({ length: credentials }, (_, i) => `fleet-rt-${i}`))
    }
  }, 150_000)
})

describe("connections", () => {
  const freePort = () =>
    new Promise<number>((resolve, reject) => {
      const server = createServer()
      server.once("error", reject)
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        server.close(() =>
          typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))
        )
      })
    })
  const occurrences = (text: string, part: string) => text.split(part).length - 1

  it("a database down at start: the replica starts, answers, says so once, and connects when it is back", async () => {
    const database = await freshDatabase("late")
    const real = new URL(database)
    const port = await freePort()
    const late = new URL(database)
    late.port = String(port)
    const home = tempHome()
    // Nothing listens on `port` yet: the database is down.
    const server = await appServer({
      codexHome: home,
      tokenUrl: tokens.url,
      env: { EFFECT_AUTH_DATABASE_URL: late.toString(), EFFECT_AUTH_LOG_LEVEL: "Info" }
    })
    const answer = await server.request("getAuthStatus", { includeToken: true, refreshToken: true })
    expect(answer.error).toBeUndefined()
    expect(answer.result.authToken).toBeNull()
    expect(server.stderr()).toContain("Cannot use the credential database")
    expect(server.stderr()).toContain("ECONNREFUSED")
    // The database comes back (a proxy to it opens on that port).
    const proxy = createServer((socket) => {
      const upstream = connect(Number(real.port), real.hostname)
      socket.pipe(upstream).pipe(socket)
      socket.on("error", () => upstream.destroy())
      upstream.on("error", () => socket.destroy())
    })
    await new Promise<void>((resolve) => proxy.listen(port, "127.0.0.1", resolve))
    try {
      await saysOnStderr(server, "Connected to the credential database", 0)
      // It hears changes again: a credential written now is served.
      const marks = server.messages.length
      const access = TokenEndpoint.unsignedJwt({ exp: Math.floor(Date.now() / 1000) + 3600, late: true })
      await putRows((sql, params) => query(database, sql, [...params]), [[
        "default",
        chatgptJson({ now: Date.now(), accessToken: access })
      ]])
      await server.waitFor((m) => m.method === "account/updated" && server.messages.indexOf(m) >= marks)
      expect((await server.request("getAuthStatus", { includeToken: true, noRefresh: true })).result.authToken).toBe(
        access
      )
      // The outage was said once, however many attempts it took.
      expect(occurrences(server.stderr(), "Cannot use the credential database")).toBe(1)
      expect(await Promise.race([server.exited.then(() => "exited"), Promise.resolve("running")])).toBe("running")
    } finally {
      server.child.kill("SIGKILL")
      await server.exited
      await new Promise((resolve) => proxy.close(resolve))
    }
  })

  it("a connection limit too low for the fleet: each replica that cannot connect says why and what it needs; one refresh", async () => {
    const database = await freshDatabase("limited")
    const name = new URL(database).pathname.slice(1)
    const role = `limited_${process.pid}`
    await query(database, `CREATE ROLE ${role} LOGIN CONNECTION LIMIT 3`)
    await query(database, `ALTER DATABASE "${name}" OWNER TO ${role}`)
    await query(database, `ALTER SCHEMA public OWNER TO ${role}`)
    const limited = new URL(database)
    limited.username = role
    const home = tempHome()
    const env = {
      EFFECT_AUTH_DATABASE_URL: limited.toString(),
      EFFECT_AUTH_DATABASE_POOL_SIZE: "1",
      EFFECT_AUTH_LOG_LEVEL: "Info",
      EFFECT_AUTH_MIN_REFRESH_INTERVAL: "0 millis"
    }
    // One at a time, so that which replica gets which connection is known: 2 each, 3 in all.
    const fleet: Array<RunningProcess> = []
    for (let i = 0; i < 4; i++) fleet.push(await appServer({ codexHome: home, tokenUrl: tokens.url, env }))
    const needs = "This replica needs up to 2 connections (a pool of 1 and 1 that listens)"
    // The first has its 2 connections (its pool keeps one open); the second its pool but not its
    // listener; the last two none.
    expect(fleet[0]!.stderr()).not.toContain("SQLSTATE 53300")
    await saysOnStderr(fleet[1]!, needs, 0)
    expect(fleet[1]!.stderr()).toContain("Could not listen for credential changes")
    for (const starved of fleet.slice(2)) {
      expect(starved.stderr()).toContain("Cannot use the credential database")
      expect(starved.stderr()).toContain(needs)
    }
    // Every replica answers; the stale credential is refreshed once, by the replica that can.
    await tokens.setBehaviour(await Effect.runPromise(TokenEndpoint.rotating("limited-rt")))
    const before = await tokens.count()
    const { access } = await (async () => {
      const json = chatgptJson({ now: Date.now(), expiresIn: 60_000, refreshToken: "limited-rt" }) as any
      const marks = fleet[0]!.messages.length
      await putRows((sql, params) => query(database, sql, [...params]), [["default", json]])
      await fleet[0]!.waitFor((m) => m.method === "account/updated" && fleet[0]!.messages.indexOf(m) >= marks)
      return { access: json.tokens.access_token as string }
    })()
    const answers = await Promise.all(fleet.map((server) => server.request("getAuthStatus", { includeToken: true })))
    expect(answers.every((a) => a.error === undefined)).toBe(true)
    expect(await tokens.count()).toBe(before + 1)
    const served = answers[0]!.result.authToken
    expect(served).not.toBeNull()
    expect(served).not.toBe(access)
    for (const server of fleet) expect(server.child.exitCode).toBeNull()
    for (const server of fleet) server.child.kill("SIGKILL")
    await Promise.all(fleet.map((server) => server.exited))
  })
})
