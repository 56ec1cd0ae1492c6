/** The logger of the programs, apart so that a program can log without loading the services (issue #14). */
import { Config, type ConfigError, Effect, Layer, Logger, LogLevel } from "effect"

/**
 * Logs for a program whose stdout is not for logs (a stdio server, a CLI):
 * logfmt lines on stderr, at the level of `EFFECT_AUTH_LOG_LEVEL` (default Info).
 */
export const layerStderrLogger: Layer.Layer<never, ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(
    Config.logLevel("EFFECT_AUTH_LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info)),
    (level) =>
      Layer.merge(
        Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger)),
        Logger.minimumLogLevel(level)
      )
  )
)
