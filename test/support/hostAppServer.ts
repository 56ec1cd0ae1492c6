/**
 * Test helper process: a host app's own server, as a user would write it with this library. It
 * serves the Codex app-server protocol on stdio (the library's AppServer over its services) and
 * calls an API through the authorized client in the same process: each `GET /call` on its
 * loopback port (announced on stderr as "calls on port N") asks `API_URL` and answers with the
 * API's status. A client that signed in with `chatgptAuthTokens` is asked for fresh ones when the
 * API refuses its token.
 */
import { HttpServerResponse } from "@effect/platform"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeStream from "@effect/platform-node/NodeStream"
import { Effect, Layer, Stream } from "effect"
import { AppServer } from "../../src/app-server/index.js"
import { AuthHttpClient } from "../../src/client/AuthHttpClient.js"
import { Configuration } from "../../src/config/Configuration.js"
import { layerNode, layerStderrLogger } from "../../src/node/layerNode.js"
import { serveOnLoopback } from "../../src/testing/loopback.js"

const writeLine = (line: string) =>
  Effect.async<void>((resume) => {
    process.stdout.write(`${line}\n`, () => resume(Effect.void))
  })

const stdinLines = NodeStream.fromReadable<Error, Uint8Array>(
  () => process.stdin,
  (cause) => new Error(`stdin failed: ${String(cause)}`)
).pipe(Stream.decodeText(), AppServer.splitLines(1024 * 1024))

const program = Effect.gen(function*() {
  const services = yield* Layer.build(
    AuthHttpClient.layer.pipe(Layer.provideMerge(layerNode), Layer.provide(NodeHttpClient.layerUndici))
  )
  const call = Effect.flatMap(AuthHttpClient, (client) => client.get(process.env.API_URL ?? "")).pipe(
    Effect.flatMap((response) => HttpServerResponse.json({ status: response.status })),
    Effect.catchAll((error) => HttpServerResponse.json({ error: error._tag }, { status: 500 })),
    Effect.provide(services)
  )
  const port = yield* serveOnLoopback(call)
  yield* Effect.sync(() => process.stderr.write(`calls on port ${port}\n`))
  const info = { codexHome: process.env.CODEX_HOME ?? "", version: "test", platformOs: "linux", platformFamily: "unix" }
  yield* AppServer.serveWhileStarting(stdinLines, writeLine, info, Effect.succeed(services))
})

program.pipe(
  Effect.scoped,
  Effect.provide(layerStderrLogger.pipe(Layer.provide(Configuration.layerConfig))),
  // Without this, runMain adds its own logger, which writes to stdout.
  (program) => NodeRuntime.runMain(program, { disablePrettyLogger: true })
)
