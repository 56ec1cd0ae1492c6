/**
 * The credentials layer of the example programs, over the `Configuration`
 * (the programs read it from the environment): the `auth.json` file under
 * `CODEX_HOME`, or, when `EFFECT_AUTH_DATABASE_URL` is set, the credential
 * `EFFECT_AUTH_CREDENTIAL_KEY` (default `default`) in PostgreSQL. The
 * PostgreSQL module is imported only then, so the file case never loads `pg`.
 * The programs provide the `Configuration` (the sign-ins and the logger
 * read it too).
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Effect, Layer, Option } from "effect"
import { Configuration } from "../src/config/Configuration.js"
import { AuthManager } from "../src/manager/AuthManager.js"
import { layerNodeConfigured, layerNodeHttpClient } from "../src/node/layerNode.js"
import { TokenRefresher } from "../src/oauth/TokenRefresher.js"
import { AuthStore } from "../src/stores/AuthStore.js"

export const layerProgram: Layer.Layer<AuthManager | AuthStore | TokenRefresher, unknown, Configuration> = Layer
  .unwrapEffect(
    Effect.gen(function*() {
      const { database } = yield* Configuration
      if (Option.isNone(database)) return layerNodeConfigured
      const { PgStore } = yield* Effect.promise(() => import("../src/postgres/index.js"))
      return AuthManager.layer.pipe(
        Layer.provideMerge(
          Layer.mergeAll(AuthStore.layerKeyed(database.value.credentialKey), TokenRefresher.layerHttp)
        ),
        Layer.provide(PgStore.layerConfig),
        Layer.provide(Layer.mergeAll(NodeContext.layer, layerNodeHttpClient))
      )
    })
  )
