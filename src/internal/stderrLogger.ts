/** The logger of the programs, apart so that a program can log without loading the services, and start faster. */
import { type ConfigError, Effect, Layer, Logger } from "effect"
import { Configuration } from "../Configuration.js"

/**
 * Logs for a program whose stdout is not for logs (a stdio server, a CLI):
 * logfmt lines on stderr, at the configured level (`EFFECT_AUTH_LOG_LEVEL`, default Info).
 */
export const layerStderrLogger: Layer.Layer<never, ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(Configuration.current, ({ logLevel }) =>
    Layer.merge(
      Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger)),
      Logger.minimumLogLevel(logLevel)
    ))
)
