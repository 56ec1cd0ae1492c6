/**
 * `effect-auth` with its full command line: `bin/effect-auth.ts` loads this for
 * every command but a plain `status` of the `auth.json` file.
 *
 * `status --refresh` is answered without the command-line parser: the parser
 * is loaded only for everything else.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { ConfigError, Console, Effect, Exit, Layer } from "effect"
import { CliIo, runStatus } from "../src/cli/CliStatus.js"
import { parseStatusArgs } from "../src/cli/StatusArgs.js"
import { Configuration } from "../src/config/Configuration.js"
import { layerNodeHttpClient } from "../src/node/layerNode.js"
import { layerCliLogger } from "../src/node/StderrLogger.js"
import { layerProgram } from "./layers.js"

const plainStatus = parseStatusArgs(process.argv.slice(2))

const program = plainStatus !== undefined
  ? runStatus(plainStatus)
  : Effect.flatMap(Effect.promise(() => import("../src/cli/Cli.js")), (Cli) => Cli.run(process.argv))

program.pipe(
  Effect.provide(Layer.mergeAll(layerProgram, NodeContext.layer, layerNodeHttpClient, CliIo.layerNode)),
  // Outside the layers above, so that what they log while they are built goes to stderr too. A person
  // reads stderr between the instructions of a sign-in: warnings and errors only, unless the level is set.
  Effect.provide(layerCliLogger),
  Effect.provide(Configuration.layerConfig),
  // A setting that cannot work (a token URL that is not http(s), a bad duration) is said once, at start.
  Effect.catchIf(
    ConfigError.isConfigError,
    (error) =>
      Console.error(`Configuration error: ${String(error).replace(/^Error: /, "")}`).pipe(
        Effect.zipRight(Effect.sync(() => (process.exitCode = 1)))
      )
  ),
  // Without this, runMain adds its own logger, which writes to stdout.
  // Ctrl-C (a canceled sign-in, an ended watch) exits 130, as shells expect.
  (program) =>
    NodeRuntime.runMain(program, {
      disablePrettyLogger: true,
      teardown: (exit, onExit) => onExit(Exit.isInterrupted(exit) ? 130 : Exit.isFailure(exit) ? 1 : 0)
    })
)
