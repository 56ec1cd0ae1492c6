/**
 * `effect-auth` with its full command line: `bin/effect-auth.ts` loads this for
 * every command but a plain `status` of the `auth.json` file.
 *
 * `status --refresh` is answered without the command-line parser: the parser
 * is loaded only for everything else.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Effect, Layer } from "effect"
import { CliIo, runStatus } from "../src/cli/CliStatus.js"
import { parseStatusArgs } from "../src/cli/StatusArgs.js"
import { layerNodeHttpClient } from "../src/node/layerNode.js"
import { runProgram } from "../src/node/runProgram.js"
import { layerCliLogger } from "../src/node/StderrLogger.js"
import { layerProgram } from "./layers.js"

const plainStatus = parseStatusArgs(process.argv.slice(2))

const program = plainStatus !== undefined
  ? runStatus(plainStatus)
  : Effect.flatMap(Effect.promise(() => import("../src/cli/Cli.js")), (Cli) => Cli.run(process.argv))

// A person reads stderr between the instructions of a sign-in: warnings and errors only, unless the
// level is set. Ctrl-C (a canceled sign-in, an ended watch) exits 130.
runProgram(
  program.pipe(Effect.provide(Layer.mergeAll(layerProgram, NodeContext.layer, layerNodeHttpClient, CliIo.layerNode))),
  { logger: layerCliLogger, interruptedExitCode: 130 }
)
