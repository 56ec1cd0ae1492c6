/** The logger of the programs, apart so that a program can log without loading the services. */
import { Effect, Layer, Logger, type LogLevel, Option, References } from "effect"
import { Configuration } from "../config/Configuration.js"

/**
 * Logs for a program whose stdout is not for logs (a stdio server, a CLI):
 * logfmt lines on stderr, at the configured level (`EFFECT_AUTH_LOG_LEVEL`),
 * else at `defaultLevel`.
 */
export const layerStderrLoggerAt = (defaultLevel: LogLevel.LogLevel): Layer.Layer<never, never, Configuration> =>
  Layer.unwrap(
    Effect.gen(function*() {
      const { logLevel } = yield* Configuration
      return Layer.merge(
        Logger.layer([Logger.withConsoleError(Logger.formatLogFmt)]),
        Layer.succeed(References.MinimumLogLevel, Option.getOrElse(logLevel, () => defaultLevel))
      )
    })
  )

/** `layerStderrLoggerAt` Info: what a server's operator reads. */
export const layerStderrLogger: Layer.Layer<never, never, Configuration> = layerStderrLoggerAt("Info")

/**
 * The logger of `effect-auth`: its stderr is read by a person, between the
 * instructions it prints, so only warnings and errors unless the level is set.
 */
export const layerCliLogger: Layer.Layer<never, never, Configuration> = layerStderrLoggerAt("Warn")
