/**
 * `effect-auth`: runs the commands of `src/Cli.ts` on this process
 * (`npx tsx examples/cli.ts --help`, or `effect-auth` once installed).
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect, Layer } from "effect"
import * as Cli from "../src/Cli.js"
import { layerNode, layerStderrLogger } from "../src/index.js"

Cli.run(process.argv).pipe(
  Effect.provide(Layer.mergeAll(layerNode, NodeContext.layer, Cli.CliIo.layerNode)),
  Effect.provide(layerStderrLogger),
  // Without this, runMain adds its own logger, which writes to stdout.
  (program) => NodeRuntime.runMain(program, { disablePrettyLogger: true })
)
