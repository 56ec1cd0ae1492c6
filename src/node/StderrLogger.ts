/** The logger of the programs, apart so that a program can log without loading the services. */
import { Effect, Layer, Logger } from "effect"
import { Configuration } from "../config/Configuration.js"

/**
 * Logs for a program whose stdout is not for logs (a stdio server, a CLI):
 * logfmt lines on stderr, at the configured level (`EFFECT_AUTH_LOG_LEVEL`, default Info).
 */
export const layerStderrLogger: Layer.Layer<never, never, Configuration> = Layer.unwrapEffect(
  Effect.map(Configuration, ({ logLevel }) =>
    Layer.merge(
      Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger)),
      Logger.minimumLogLevel(logLevel)
    ))
)
