/**
 * The commands of `effect-auth`, the credentials of `$CODEX_HOME/auth.json`
 * from a shell (Effect-TS/examples `templates/cli`: the commands live here,
 * the `bin` file only runs them, so they can be tested in process).
 *
 *   effect-auth status [--json] [--include-token] [--refresh]
 *   effect-auth login --api-key-stdin | --tokens-file FILE
 *   effect-auth logout | refresh | watch
 *
 * Exit codes: 0 usable credentials, 1 logged out or poisoned (or the command
 * failed), 2 bad usage. Tokens are printed only with --include-token.
 */
import { Command, Options, ValidationError } from "@effect/cli"
import * as FileSystem from "@effect/platform/FileSystem"
import { Console, Context, Effect, Layer, Option, Redacted, Schema, Stream } from "effect"
import { AuthManager } from "./AuthManager.js"
import type { AuthState } from "./internal/refreshState.js"

/**
 * What the commands need from the process they run in: standard input and
 * the exit code. `layerNode` binds them to Node's `process`; tests supply
 * their own.
 */
export class CliIo extends Context.Tag("effect-auth-manager/Cli/CliIo")<CliIo, {
  readonly stdin: Stream.Stream<Uint8Array, Error>
  readonly setExitCode: (code: number) => Effect.Effect<void>
}>() {
  static readonly layerNode: Layer.Layer<CliIo> = Layer.sync(CliIo, () => ({
    stdin: Stream.suspend(() =>
      Stream.fromAsyncIterable(process.stdin, (cause) => new Error(`could not read standard input: ${String(cause)}`))
    ),
    setExitCode: (code) => Effect.sync(() => (process.exitCode = code))
  }))
}

const setExitCode = (code: number) => Effect.flatMap(CliIo, (io) => io.setExitCode(code))

const usable = (state: AuthState) => state.method !== null && state.status !== "poisoned"

const describe = (state: AuthState): string => {
  const who = state.method === "apikey"
    ? "Signed in with an API key"
    : state.method === "chatgpt"
    ? `Signed in with ChatGPT${state.email === null ? "" : ` as ${state.email}`}${
      state.planType === null ? "" : ` (plan: ${state.planType})`
    }`
    : "Not signed in"
  const health = state.status === "poisoned"
    ? `\nThe refresh token is dead (${state.reason}): sign in again (effect-auth login).`
    : state.status === "cooling-down"
    ? `\nThe last refresh failed for now; the next attempt is after ${new Date(state.retryAt ?? 0).toISOString()}.`
    : ""
  return who + health
}

const json = Options.boolean("json").pipe(Options.withDescription("Print JSON, for scripts"))
const includeToken = Options.boolean("include-token").pipe(
  Options.withDescription("Print the access token (or API key). It is a secret: never paste it anywhere.")
)
const refresh = Options.boolean("refresh").pipe(
  Options.withDescription("Refresh the access token first if it needs it")
)

export const status = Command.make("status", { json, includeToken, refresh }, (options) =>
  Effect.gen(function*() {
    const auth = yield* AuthManager
    const result = yield* auth.getAuthStatus({ includeToken: options.includeToken, refreshToken: options.refresh })
    const state = yield* auth.state
    const token = result.authToken === null ? null : Redacted.value(result.authToken)
    if (options.json) {
      yield* Console.log(JSON.stringify({
        authMethod: result.authMethod,
        email: state.email,
        planType: state.planType,
        status: state.status,
        reason: state.reason,
        retryAt: state.retryAt === null ? null : new Date(state.retryAt).toISOString(),
        ...(options.includeToken ? { authToken: token } : {})
      }))
    } else {
      yield* Console.log(describe(state))
      if (options.includeToken && token !== null) yield* Console.log(token)
    }
    yield* setExitCode(usable(state) ? 0 : 1)
  })).pipe(Command.withDescription("Show who is signed in and whether the credentials work"))

const readStdin = Effect.flatMap(CliIo, (io) => io.stdin.pipe(Stream.decodeText(), Stream.mkString))

const TokensFile = Schema.Struct({
  id_token: Schema.String,
  access_token: Schema.String,
  refresh_token: Schema.String,
  account_id: Schema.optional(Schema.NullOr(Schema.String))
})
const decodeTokensFile = Schema.decodeUnknown(
  Schema.parseJson(Schema.Union(Schema.Struct({ tokens: TokensFile }), TokensFile))
)

export const login = Command.make("login", {
  apiKeyStdin: Options.boolean("api-key-stdin").pipe(Options.withDescription("Read an API key from standard input")),
  tokensFile: Options.file("tokens-file", { exists: "yes" }).pipe(
    Options.withDescription(
      "Sign in with ChatGPT tokens from a JSON file ({id_token, access_token, refresh_token} or an auth.json)"
    ),
    Options.optional
  )
}, ({ apiKeyStdin, tokensFile }) =>
  Effect.gen(function*() {
    const auth = yield* AuthManager
    if (apiKeyStdin === Option.isSome(tokensFile)) {
      yield* Console.error("Give exactly one of --api-key-stdin and --tokens-file FILE (see effect-auth login --help).")
      return yield* setExitCode(2)
    }
    if (apiKeyStdin) {
      const key = (yield* readStdin).trim()
      if (key.length === 0) {
        yield* Console.error("No API key on standard input.")
        return yield* setExitCode(1)
      }
      yield* auth.loginWithApiKey(Redacted.make(key))
    } else if (Option.isSome(tokensFile)) {
      const text = yield* Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFileString(tokensFile.value))
      const parsed = yield* decodeTokensFile(text).pipe(
        Effect.mapError(() => new Error(`${tokensFile.value} does not hold id_token, access_token and refresh_token`))
      )
      const tokens = "tokens" in parsed ? parsed.tokens : parsed
      yield* auth.loginWithTokens({
        idToken: Redacted.make(tokens.id_token),
        accessToken: Redacted.make(tokens.access_token),
        refreshToken: Redacted.make(tokens.refresh_token),
        accountId: tokens.account_id ?? null
      })
    }
    yield* Console.log(describe(yield* auth.state))
  })).pipe(Command.withDescription("Sign in with an API key or ChatGPT tokens"))

export const logout = Command.make("logout", {}, () =>
  Effect.gen(function*() {
    yield* Effect.flatMap(AuthManager, (auth) => auth.logout)
    yield* Console.log("Signed out.")
  })).pipe(Command.withDescription("Remove the stored credentials"))

export const refreshCommand = Command.make("refresh", {}, () =>
  Effect.gen(function*() {
    const auth = yield* AuthManager
    const outcome = yield* Effect.either(auth.refresh)
    if (outcome._tag === "Left") {
      yield* Console.error(outcome.left.message)
      return yield* setExitCode(1)
    }
    yield* Console.log(describe(yield* auth.state))
    yield* setExitCode(usable(yield* auth.state) ? 0 : 1)
  })).pipe(Command.withDescription("Refresh the access token now if it needs it"))

export const watch = Command.make("watch", { json }, (options) =>
  Effect.flatMap(AuthManager, (auth) =>
    auth.changes.pipe(
      Stream.runForEach((state) =>
        Console.log(
          options.json ? JSON.stringify(state) : `${new Date().toISOString()}  ${describe(state).replace(/\n/g, " ")}`
        )
      )
    ))).pipe(Command.withDescription("Print each change of the credentials until interrupted"))

/** `effect-auth` and its subcommands. */
export const command = Command.make("effect-auth").pipe(
  Command.withSubcommands([status, login, logout, refreshCommand, watch])
)

const cli = Command.run(command, { name: "effect-auth", version: "0.1.0" })

/**
 * Runs `effect-auth` on the given `process.argv` (node, script, args…). Bad
 * usage sets exit code 2; any other failure is printed as a sentence for the
 * person at the terminal (no stack trace) with exit code 1.
 *
 * @example
 * Cli.run(process.argv).pipe(Effect.provide(layers), NodeRuntime.runMain)
 */
export const run = (argv: ReadonlyArray<string>) =>
  cli(argv).pipe(
    Effect.catchIf(ValidationError.isValidationError, () => setExitCode(2)),
    Effect.catchAll((error) => Console.error(error.message).pipe(Effect.zipRight(setExitCode(1))))
  )
