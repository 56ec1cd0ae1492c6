/**
 * The whole stack for a Node server: `auth.json` under `$CODEX_HOME`, the
 * HTTP refresher, and Node's file system and HTTP client.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { type Config, Context, Effect, Layer } from "effect"
import { HttpClient, type HttpClientError } from "effect/http"
import { Configuration } from "../config/Configuration.js"
import { AuthManager } from "../manager/AuthManager.js"
import { TokenRefresher } from "../oauth/TokenRefresher.js"
import { AuthStore } from "../stores/AuthStore.js"
import * as StoreMode from "../stores/StoreMode.js"
import * as StderrLogger from "./StderrLogger.js"

/**
 * Node's HTTP client over undici (`NodeHttpClient.layerUndici`), built on its first request: a
 * program that never makes one (a `status`, an app server until a token needs refreshing) neither
 * loads undici nor creates its agent before its first answer. The same client as the Effect 3
 * edition's (where the platform's `node:http` client lost errors emitted before its fibers ran):
 * undici answers with one promise, and costs less CPU per request.
 */
export const layerNodeHttpClient: Layer.Layer<HttpClient.HttpClient> = Layer.effect(
  HttpClient.HttpClient,
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    // The module too: importing it loads undici, which a program that never refreshes has no use for.
    const client = yield* Effect.cached(
      Effect.promise(() => import("@effect/platform-node/NodeHttpClient")).pipe(
        Effect.flatMap((NodeHttpClient) => Layer.buildWithScope(NodeHttpClient.layerUndici, scope)),
        Effect.map(Context.get(HttpClient.HttpClient))
      )
    )
    // `makeWith` adds nothing of its own: the real client's request handling and span, once each.
    return HttpClient.makeWith<never, never, HttpClientError.HttpClientError, never>(
      (request) => Effect.flatMap(request, (request) => Effect.flatMap(client, (real) => real.execute(request))),
      Effect.succeed
    )
  })
)

/**
 * Everything `AuthManager` needs on Node, over the `Configuration` in context. The credentials are
 * where Codex keeps them: `EFFECT_AUTH_CREDENTIALS_STORE`, else `cli_auth_credentials_store` in
 * `$CODEX_HOME/config.toml` (`file`, `keyring`, `auto`, `ephemeral`), else `auth.json`.
 */
export const layerNodeConfigured: Layer.Layer<
  AuthManager | AuthStore | TokenRefresher,
  Config.ConfigError,
  Configuration
> = AuthManager.layer.pipe(
  Layer.provideMerge(Layer.mergeAll(
    Layer.effect(AuthStore, Configuration.use(StoreMode.makeAuthStore)),
    TokenRefresher.layerHttp
  )),
  // Only what the store needs of Node: NodeServices would load its process and terminal modules too.
  Layer.provide(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, layerNodeHttpClient))
)

/**
 * Everything `AuthManager` needs on Node, configured from the environment, read once
 * (`Configuration.layerConfig`, also provided, for the layers built on top such as
 * `SignIn.layer`). To configure it in code instead:
 * `layerNodeConfigured.pipe(Layer.provideMerge(Configuration.layer({ codexHome: "/srv/codex" })))`.
 *
 * @example
 * NodeRuntime.runMain(program.pipe(Effect.provide(layerNode)))
 */
export const layerNode: Layer.Layer<
  AuthManager | AuthStore | TokenRefresher | Configuration,
  Config.ConfigError
> = layerNodeConfigured.pipe(Layer.provideMerge(Configuration.layerConfig))

/**
 * Logs for a program whose stdout is not for logs (a stdio server, a CLI):
 * logfmt lines on stderr, at the configured level (`EFFECT_AUTH_LOG_LEVEL`, default Info).
 */
export const layerStderrLogger: Layer.Layer<never, never, Configuration> = StderrLogger.layerStderrLogger
