// What a user writes to serve the auth methods from their own program: the
// package imported by name (its `exports`), Node's platform by deep import.
// Measured by bench/startup.ts (spawn to the `initialize` answer).
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeStream from "@effect/platform-node/NodeStream"
import { Effect, Layer, Stream } from "effect"
import { AuthStore, layerNode, layerStderrLogger } from "effect-auth-manager"
import { AppServer } from "effect-auth-manager/app-server"
import { dirname } from "node:path"

const lines = NodeStream.fromReadable(() => process.stdin, (cause) => new Error(String(cause))).pipe(
  Stream.decodeText(),
  Stream.splitLines
)
const writeLine = (line) => Effect.async((resume) => void process.stdout.write(`${line}\n`, () => resume(Effect.void)))

Effect.flatMap(AuthStore, (store) =>
  AppServer.serve(lines, writeLine, {
    codexHome: dirname(store.location),
    version: "1.0.0",
    platformOs: process.platform,
    platformFamily: "unix"
  })).pipe(
    Effect.scoped,
    Effect.provide(Layer.mergeAll(layerNode, NodeContext.layer)),
    Effect.provide(layerStderrLogger),
    (program) => NodeRuntime.runMain(program, { disablePrettyLogger: true })
  )
