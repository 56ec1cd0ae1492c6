/**
 * Test helper process: one server calling an API through the authorized
 * client. Prints {"method":"ready"} once its credentials are loaded, waits for
 * a line on stdin, GETs the URL it was given, prints {"method":"done",
 * "params":{"status":…}} and exits.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect, Layer } from "effect"
import { AuthHttpClient } from "../../src/client/AuthHttpClient.js"
import { Configuration } from "../../src/config/Configuration.js"
import { AuthManager } from "../../src/manager/AuthManager.js"
import { layerNode, layerStderrLogger } from "../../src/node/layerNode.js"

const print = (message: object) => Effect.sync(() => process.stdout.write(`${JSON.stringify(message)}\n`))
const nextLine = Effect.async<void>((resume) => {
  process.stdin.once("data", () => {
    process.stdin.destroy()
    resume(Effect.void)
  })
})

const program = Effect.gen(function*() {
  const client = yield* AuthHttpClient
  yield* Effect.flatMap(AuthManager, (auth) => auth.state)
  yield* print({ method: "ready" })
  yield* nextLine
  const response = yield* client.get(process.argv[2] ?? "")
  yield* print({ method: "done", params: { status: response.status } })
})

program.pipe(
  Effect.provide(AuthHttpClient.layer.pipe(Layer.provideMerge(layerNode), Layer.provide(NodeHttpClient.layerUndici))),
  Effect.provide(layerStderrLogger.pipe(Layer.provide(Configuration.layerConfig))),
  // Without this, runMain adds its own logger, which writes to stdout.
  (program) => NodeRuntime.runMain(program, { disablePrettyLogger: true })
)
