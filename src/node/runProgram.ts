/**
 * How the shipped programs run: their logger and the `Configuration` read from the environment
 * provided outside everything they build (so that what is logged while building goes to stderr
 * too), a setting that cannot work said in one line at start (exit 1), and Node's runtime without
 * its own logger (which would write to stdout).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { ConfigError, Console, Effect, Exit, type Layer } from "effect"
import { Configuration } from "../config/Configuration.js"

export interface RunOptions {
  /** The program's logger, built over the configuration (its level). */
  readonly logger: Layer.Layer<never, never, Configuration>
  /** Interrupted (Ctrl-C: a canceled sign-in, an ended watch) exits 130, as shells expect. */
  readonly interruptedExitCode?: number | undefined
}

export const runProgram = <A, E>(program: Effect.Effect<A, E, Configuration>, options: RunOptions): void =>
  program.pipe(
    Effect.provide(options.logger),
    Effect.provide(Configuration.layerConfig),
    Effect.catchIf(
      (error): error is Extract<E | ConfigError.ConfigError, ConfigError.ConfigError> =>
        ConfigError.isConfigError(error),
      (error) =>
        Console.error(`Configuration error: ${String(error).replace(/^Error: /, "")}`).pipe(
          Effect.zipRight(Effect.sync(() => (process.exitCode = 1)))
        )
    ),
    (program) =>
      NodeRuntime.runMain(program, {
        disablePrettyLogger: true,
        ...(options.interruptedExitCode === undefined ? {} : {
          teardown: (exit, onExit) =>
            onExit(Exit.isInterrupted(exit) ? options.interruptedExitCode! : Exit.isFailure(exit) ? 1 : 0)
        })
      })
  )
