/**
 * The multi-process stress runs, sized by the caller: test/e2e/MultiProcess.test.ts
 * runs a small sample in the suite, test/soak/ (`npm run soak`) the long runs, with
 * the same assertions.
 */
import { expect } from "@effect/vitest"
import { Effect, Either, Random } from "effect"
import { readFileSync, writeFileSync } from "node:fs"
import * as AuthDocument from "../../src/document/AuthDocument.js"
import * as TokenEndpoint from "../../src/testing/TokenEndpoint.js"
import { chatgptJson, secrets } from "./fixtures.js"
import { appServer, endpoint, type RunningProcess, spawnScript, tempHome } from "./processes.js"

export interface KillsOptions {
  readonly home: string
  readonly rounds: number
  /** Writers alive at once, each on its own CODEX_HOME. */
  readonly parallel: number
  /** Seeds the kill delays, so that a failure can be replayed. */
  readonly seed: number
  /** Longest delay between a writer's first write and its kill. */
  readonly maxDelayMs: number
}

export interface KillsResult {
  readonly checked: number
  /** For every round whose file did not parse: the round, the delay and the problem. */
  readonly broken: ReadonlyArray<string>
}

/**
 * Writers of auth.json (test/support/writer.ts, bundled) killed with SIGKILL at
 * seeded pseudo-random moments after they are ready: after every kill the file
 * must parse as a whole document.
 */
export const killWhileWriting = async (options: KillsOptions): Promise<KillsResult> => {
  const random = Random.make(options.seed)
  const delays = Array.from(
    { length: options.rounds },
    () => Effect.runSync(random.nextIntBetween(0, options.maxDelayMs + 1))
  )
  let checked = 0
  const broken: Array<string> = []
  await Promise.all(Array.from({ length: options.parallel }, async (_, lane) => {
    const home = `${options.home}/lane-${lane}`
    for (let round = lane; round < options.rounds; round += options.parallel) {
      const writer = spawnScript("writer", [], { HOME: home, CODEX_HOME: home })
      // Ready: the first document is written, and the writer is rewriting it in a loop.
      await writer.waitFor((line) => line.params === "ready")
      await new Promise((resolve) => setTimeout(resolve, delays[round]))
      writer.child.kill("SIGKILL")
      await writer.exited
      const parsed = AuthDocument.parse(readFileSync(`${home}/auth.json`, "utf8"))
      if (Either.isLeft(parsed)) broken.push(`round ${round} (killed ${delays[round]} ms after ready): ${parsed.left}`)
      checked++
    }
  }))
  return { checked, broken }
}

const poll = (server: RunningProcess, refreshToken: boolean) =>
  server.request("getAuthStatus", { includeToken: true, refreshToken }).then((m) => m.result)

/**
 * Rotating refresh tokens: `processes` app servers on one CODEX_HOME, every token stale
 * at once, polling together for `rounds` rounds. Every refresh must present the newest
 * refresh token (a reused one would poison), and all end on the token on disk.
 */
export const expectRotationRace = async (options: { readonly processes: number; readonly rounds: number }) => {
  const tokens = await endpoint(TokenEndpoint.rotating(secrets.refresh, 60))
  const home = tempHome()
  writeFileSync(`${home}/auth.json`, JSON.stringify(chatgptJson({ now: Date.now(), expiresIn: 30_000 })))
  // Every access token the endpoint gives is stale (60 s < 5 min window) and may be refreshed at once.
  const all = await Promise.all(
    Array.from(
      { length: options.processes },
      () => appServer({ codexHome: home, tokenUrl: tokens.url, env: { EFFECT_AUTH_MIN_REFRESH_INTERVAL: "0 millis" } })
    )
  )
  for (let round = 0; round < options.rounds; round++) {
    await Promise.all(all.map((server) => poll(server, round % 2 === 0)))
  }
  const rotations = await tokens.count()
  expect(rotations).toBeGreaterThanOrEqual(options.rounds)
  // Then the provider goes down for an hour: one more poll each, and no process can rotate again. Each
  // one adopts what storage holds (its watch may not have seen the last write yet: the flight re-reads
  // storage under the refresh lock) or learns the shared cooldown: all must serve the token on disk.
  await tokens.setBehaviour(TokenEndpoint.oauthError(503, "temporarily_unavailable", { "retry-after": "3600" }))
  const finals = await Promise.all(all.map((server) => poll(server, true)))
  const onDisk = JSON.parse(readFileSync(`${home}/auth.json`, "utf8"))
  expect(onDisk.tokens.refresh_token).toBe(`rt-${rotations}`)
  expect(finals.map((f) => f.authToken)).toEqual(Array(options.processes).fill(onDisk.tokens.access_token))
  // Every refresh presented the newest refresh token: none was reused (the endpoint would have said so), none unknown.
  const presented = (await tokens.requests()).map((r) => r.fields.refresh_token)
  const chain = [secrets.refresh, ...Array.from({ length: rotations - 1 }, (_, i) => `rt-${i + 1}`)]
  expect(presented.slice(0, rotations)).toEqual(chain)
  // At most one process asked during the outage, with the newest token.
  expect(presented.slice(rotations).length).toBeLessThanOrEqual(1)
  expect(presented.slice(rotations).every((token) => token === `rt-${rotations}`)).toBe(true)
}
