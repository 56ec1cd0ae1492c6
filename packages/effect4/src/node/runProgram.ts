/**
 * How a program runs: its logger and the `Configuration` read from the environment provided
 * outside everything it builds (so that what is logged while building goes to stderr too), a
 * setting that cannot work said in one line at start (exit 1), and Node's runtime, whose own error
 * report (on stdout) is left to the program's logger.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Config, Console, Effect, Exit, type Layer } from "effect"
import { Configuration } from "../config/Configuration.js"

export interface RunOptions {
  /** The program's logger, built over the configuration (its level). */
  readonly logger: Layer.Layer<never, never, Configuration>
  /** Interrupted (Ctrl-C: a canceled sign-in, an ended watch) exits 130, as shells expect. */
  readonly interruptedExitCode?: number | undefined
}

export const runProgram = <A, E>(program: Effect.Effect<A, E, Configuration>, options: RunOptions): void =>
  program.pipe(
    // Reported here, through the program's logger: the runtime's own report would go to stdout.
    Effect.tapCause((cause) => Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.logError(cause)),
    Effect.provide(options.logger),
    Effect.provide(Configuration.layerConfig),
    Effect.catchIf(
      (error): error is Extract<E | Config.ConfigError, Config.ConfigError> => error instanceof Config.ConfigError,
      (error) =>
        Console.error(`Configuration error: ${error.cause.message}`).pipe(
          Effect.andThen(Effect.sync(() => (process.exitCode = 1)))
        )
    ),
    NodeRuntime.runMain({
      disableErrorReporting: true,
      ...(options.interruptedExitCode === undefined ? {} : {
        teardown: (exit, onExit) =>
          onExit(Exit.hasInterrupts(exit) ? options.interruptedExitCode! : Exit.isFailure(exit) ? 1 : 0)
      })
    })
  )
