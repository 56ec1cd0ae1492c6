/**
 * The credentials layer of the example programs: the `auth.json` file under
 * `CODEX_HOME`, or, when `EFFECT_AUTH_DATABASE_URL` is set, the credential
 * `EFFECT_AUTH_CREDENTIAL_KEY` (default `default`) in PostgreSQL. The
 * PostgreSQL module is imported only then, so the file case never loads `pg`.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Config, ConfigError, Effect, Either, Layer, Option, Redacted } from "effect"
import { AuthManager } from "../src/AuthManager.js"
import { AuthStore } from "../src/AuthStore.js"
import { layerNode, layerNodeHttpClient } from "../src/layerNode.js"
import { TokenRefresher } from "../src/TokenRefresher.js"

const databaseUrl = Config.option(
  Config.redacted("EFFECT_AUTH_DATABASE_URL").pipe(
    Config.mapOrFail((url) =>
      /^postgres(ql)?:\/\//.test(Redacted.value(url))
        ? Either.right(url)
        : Either.left(ConfigError.InvalidData([], "Expected a postgres:// URL"))
    )
  )
)

export const layerProgram = Layer.unwrapEffect(
  Effect.gen(function*() {
    const url = yield* databaseUrl
    if (Option.isNone(url)) return layerNode
    const key = yield* Config.string("EFFECT_AUTH_CREDENTIAL_KEY").pipe(Config.withDefault("default"))
    const { PgStore } = yield* Effect.promise(() => import("../src/postgres/index.js"))
    return AuthManager.layer.pipe(
      Layer.provideMerge(Layer.mergeAll(AuthStore.layerKeyed(key), TokenRefresher.layerHttp)),
      Layer.provide(PgStore.layerConfig),
      Layer.provide(Layer.mergeAll(NodeContext.layer, layerNodeHttpClient))
    )
  })
)
