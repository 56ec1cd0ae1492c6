/**
 * The whole stack for a Node server: `auth.json` under `$CODEX_HOME`, the
 * HTTP refresher, and Node's file system and HTTP client.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Config, type ConfigError, Effect, Layer, Logger, LogLevel } from "effect"
import { AuthManager } from "./AuthManager.js"
import { AuthStore } from "./AuthStore.js"
import { TokenRefresher } from "./TokenRefresher.js"

/**
 * Everything `AuthManager` needs on Node, configured through `Config`.
 *
 * @example
 * NodeRuntime.runMain(program.pipe(Effect.provide(layerNode)))
 */
export const layerNode: Layer.Layer<AuthManager | AuthStore | TokenRefresher, ConfigError.ConfigError> = AuthManager
  .layer.pipe(
    Layer.provideMerge(Layer.mergeAll(AuthStore.layerFile, TokenRefresher.layerHttp)),
    Layer.provide(Layer.mergeAll(NodeContext.layer, NodeHttpClient.layer))
  )

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
