/**
 * Test helper process: one replica of a server holding many credentials. It
 * runs the keyed manager on PostgreSQL (EFFECT_AUTH_DATABASE_URL), polls the
 * keys `fleet-0` … `fleet-{FLEET_KEYS - 1}` at once when a line arrives on
 * stdin, and prints one JSON line: the access token served for each key. The
 * line `peek` asks with `noRefresh` (what each manager holds, no request);
 * `heap` collects garbage and prints `{"heap": bytes, "live": managers alive}` (the bench's
 * memory per credential, and its idle release).
 */
import * as NodeStream from "@effect/platform-node/NodeStream"
import { Duration, Effect, Layer, Redacted, Stream } from "effect"
import { writeFileSync } from "node:fs"
import { Session } from "node:inspector"
import { Configuration } from "../../src/config/Configuration.js"
import { settingsOf } from "../../src/manager/AuthManager.js"
import * as KeyedAuthManager from "../../src/manager/KeyedAuthManager.js"
import { layerNodeHttpClient } from "../../src/node/layerNode.js"
import { TokenRefresher } from "../../src/oauth/TokenRefresher.js"
import { PgStore } from "../../src/postgres/index.js"
import { heapUsedAfterGc } from "./heap.js"

const count = Number(process.env.FLEET_KEYS ?? "1")
const keys = Array.from({ length: count }, (_, i) => `fleet-${i}`)

// FLEET_CPU_PROFILE=FILE: a V8 CPU profile of the whole run, written when stdin ends (the bench's profile).
const profileFile = process.env.FLEET_CPU_PROFILE
const profiler = profileFile === undefined ? undefined : new Session()
if (profiler !== undefined) {
  profiler.connect()
  profiler.post("Profiler.enable")
  profiler.post("Profiler.start")
}
const writeProfile = () =>
  new Promise<void>((resolve) => {
    if (profiler === undefined || profileFile === undefined) return resolve()
    profiler.post("Profiler.stop", (error, result) => {
      if (error === null) writeFileSync(profileFile, JSON.stringify((result as { profile: unknown }).profile))
      resolve()
    })
  })

const program = Effect.gen(function*() {
  const auth = yield* KeyedAuthManager.KeyedAuthManager
  process.stdout.write("ready\n")
  yield* NodeStream.fromReadable<Error, Uint8Array>(() => process.stdin, (cause) => new Error(String(cause))).pipe(
    Stream.decodeText(),
    Stream.splitLines,
    Stream.runForEach((line) =>
      line.trim() === "heap"
        ? Effect.flatMap(
          auth.keys,
          (live) =>
            Effect.sync(() =>
              process.stdout.write(`${JSON.stringify({ heap: heapUsedAfterGc(), live: live.length })}\n`)
            )
        )
        : Effect.forEach(
          keys,
          (key) => auth.getAuthStatus(key, { includeToken: true, noRefresh: line.trim() === "peek" }),
          { concurrency: "unbounded" }
        ).pipe(
          Effect.flatMap((statuses) =>
            Effect.sync(() =>
              process.stdout.write(
                `${JSON.stringify(statuses.map((s) => (s.authToken === null ? null : Redacted.value(s.authToken))))}\n`
              )
            )
          )
        )
    )
  )
})

// FLEET_IDLE_TTL_MS: how long an unused manager lives (the bench's measure of the idle release);
// FLEET_REFRESHES_AT_ONCE: the keyed manager's `refreshesAtOnce`.
const idleTtl = process.env.FLEET_IDLE_TTL_MS
const atOnce = process.env.FLEET_REFRESHES_AT_ONCE
const keyedLayer = idleTtl === undefined && atOnce === undefined
  ? KeyedAuthManager.KeyedAuthManager.layer
  : Layer.scoped(
    KeyedAuthManager.KeyedAuthManager,
    Effect.flatMap(Configuration, (configuration) =>
      KeyedAuthManager.make({
        settings: settingsOf(configuration),
        ...(idleTtl === undefined ? {} : { idleTimeToLive: Duration.millis(Number(idleTtl)) }),
        ...(atOnce === undefined ? {} : { refreshesAtOnce: Number(atOnce) })
      }))
  )

Effect.runPromise(program.pipe(
  Effect.provide(keyedLayer.pipe(
    Layer.provide(Layer.mergeAll(PgStore.layerConfig, TokenRefresher.layerHttp)),
    Layer.provide(Configuration.layerConfig),
    // The library's own HTTP client (connections kept open between token requests).
    Layer.provide(layerNodeHttpClient)
  )),
  Effect.scoped
)).then(() => writeProfile().then(() => process.exit(0)), (error) => {
  process.stderr.write(`${String(error)}\n`)
  process.exit(1)
})
