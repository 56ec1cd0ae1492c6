/**
 * `npm run demo`: a dead refresh token, polled by 100 clients × 10 polls,
 * with and without effect-auth-manager, against a token endpoint on
 * 127.0.0.1. Nothing leaves this machine.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as FileSystem from "@effect/platform/FileSystem"
import { ConfigProvider, Console, Effect, Layer, Redacted } from "effect"
import { AuthManager, layerNode, TokenRefresher } from "effect-auth-manager"
import { TokenEndpoint } from "effect-auth-manager/testing"

const pollers = 100
const pollsEach = 10

const everyPoller = <A, E, R>(poll: Effect.Effect<A, E, R>) =>
  Effect.all(
    Array.from({ length: pollers }, () => Effect.replicateEffect(poll, pollsEach, { discard: true })),
    { concurrency: "unbounded", discard: true }
  )

const describeToken = (token: Redacted.Redacted<string> | null) =>
  token === null ? "withheld (null)" : `served (a ${Redacted.value(token).length}-character JWT)`

const program = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const codexHome = yield* fs.makeTempDirectoryScoped({ prefix: "effect-auth-demo-" })
  const endpoint = yield* TokenEndpoint.make(TokenEndpoint.codedError(401, "refresh_token_reused"))
  const expired = TokenEndpoint.unsignedJwt({ exp: Math.floor(Date.now() / 1000) - 60 })
  yield* fs.writeFileString(
    `${codexHome}/auth.json`,
    JSON.stringify({
      auth_mode: "chatgpt",
      OPENAI_API_KEY: null,
      tokens: {
        id_token: TokenEndpoint.unsignedJwt({ email: "ada@example.com" }),
        access_token: expired,
        refresh_token: "rt-already-used",
        account_id: "acct_demo"
      },
      last_refresh: new Date(Date.now() - 9 * 86_400_000).toISOString()
    }),
    // As the Codex CLI writes it: readable by its owner only.
    { mode: 0o600 }
  )
  const config = Layer.setConfigProvider(ConfigProvider.fromMap(
    new Map([
      ["CODEX_HOME", codexHome],
      ["CODEX_REFRESH_TOKEN_URL_OVERRIDE", endpoint.url]
    ])
  ))
  const stack = layerNode.pipe(Layer.provide(config))

  yield* Console.log(`A token endpoint on ${endpoint.url} answers every refresh with 401 refresh_token_reused.`)
  yield* Console.log(
    `${pollers} clients each poll getAuthStatus({ refreshToken: true }) ${pollsEach} times, all at once.\n`
  )

  yield* Effect.gen(function*() {
    const auth = yield* AuthManager
    const refresher = yield* TokenRefresher

    // Before the fix: every poll goes to the token endpoint.
    yield* everyPoller(Effect.ignore(refresher.refresh(Redacted.make("rt-already-used"))))
    const naive = yield* endpoint.count

    const statuses: Array<Redacted.Redacted<string> | null> = []
    yield* everyPoller(
      Effect.map(auth.getAuthStatus({ includeToken: true, refreshToken: true }), (s) => statuses.push(s.authToken))
    )
    const managed = (yield* endpoint.count) - naive
    const state = yield* auth.state

    yield* Console.log("                              requests to the token endpoint")
    yield* Console.log(`  naive refresh on every poll  ${String(naive).padStart(6)}`)
    yield* Console.log(`  effect-auth-manager          ${String(managed).padStart(6)}`)
    yield* Console.log(
      `\nEvery one of the ${statuses.length} answers kept authMethod "chatgpt" and ` +
        `${statuses.every((t) => t === null) ? "withheld the stale token (authToken: null)" : "LEAKED A TOKEN"}.`
    )
    yield* Console.log(`The snapshot is ${state.status} (${state.reason}); the client is told to sign in again.\n`)

    // Signing in again clears the poison by itself.
    yield* endpoint.setBehaviour(yield* TokenEndpoint.rotating("rt-fresh"))
    yield* auth.loginWithTokens({
      idToken: Redacted.make(TokenEndpoint.unsignedJwt({ email: "ada@example.com" })),
      accessToken: Redacted.make(TokenEndpoint.unsignedJwt({ exp: Math.floor(Date.now() / 1000) + 3600, n: "fresh" })),
      refreshToken: Redacted.make("rt-fresh")
    })
    const after = yield* auth.getAuthStatus({ includeToken: true, refreshToken: true })
    yield* Console.log(
      `After a new sign-in: status ${(yield* auth.state).status}, token ${describeToken(after.authToken)}.`
    )
    yield* Console.log(`Requests in total: ${yield* endpoint.count} (the new sign-in was fresh, so it needed none).`)
  }).pipe(Effect.provide(stack))
})

program.pipe(Effect.scoped, Effect.provide(NodeContext.layer), NodeRuntime.runMain)
