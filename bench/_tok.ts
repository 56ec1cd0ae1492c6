import { HttpClient, HttpClientRequest } from "@effect/platform"
import { Effect, Layer, Redacted } from "effect"
import { fork } from "node:child_process"
import { Configuration } from "../src/config/Configuration.js"
import { layerNodeHttpClient } from "../src/node/layerNode.js"
import { TokenRefresher } from "../src/oauth/TokenRefresher.js"
const child = fork(new URL("./refreshCost.ts", import.meta.url).pathname, ["endpoint"], { execArgv: ["--import", "tsx"], stdio: "inherit" })
const url = await new Promise<string>((r) => child.once("message", (u) => r(String(u))))
process.env.CODEX_REFRESH_TOKEN_URL_OVERRIDE = url
const n = 5000
const layer = TokenRefresher.layerHttp.pipe(Layer.provide(Configuration.layerConfig), Layer.provideMerge(layerNodeHttpClient))
const measure = (name: string, one: Effect.Effect<unknown, unknown, TokenRefresher | HttpClient.HttpClient>) =>
  Effect.gen(function*() {
    yield* Effect.forEach(Array.from({ length: 200 }), () => one, { concurrency: 16 })
    const c0 = process.cpuUsage()
    yield* Effect.forEach(Array.from({ length: n }), () => one, { concurrency: 16 })
    const c = process.cpuUsage(c0)
    console.log(name.padEnd(20), ((c.user + c.system) / n / 1000).toFixed(3), "ms CPU per request")
  })
await Effect.runPromise(Effect.gen(function*() {
  const refresher = yield* TokenRefresher
  const client = yield* HttpClient.HttpClient
  for (let round = 0; round < 4; round++) {
    yield* measure("refresher", refresher.refresh(Redacted.make("rt-1")))
    yield* measure("raw client", Effect.flatMap(client.execute(HttpClientRequest.bodyText(HttpClientRequest.post(url), '{"client_id":"x","grant_type":"refresh_token","refresh_token":"rt-1"}', "application/json")), (r) => r.text))
    yield* measure("raw, no tracer", Effect.flatMap(HttpClient.withTracerDisabledWhen(client, () => true).execute(HttpClientRequest.bodyText(HttpClientRequest.post(url), '{"client_id":"x","grant_type":"refresh_token","refresh_token":"rt-1"}', "application/json")), (r) => r.text))
  }
}).pipe(Effect.provide(layer), Effect.scoped))
child.kill()
