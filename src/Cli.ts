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
 * failed), 2 bad usage, 3 `refresh` did nothing (refreshed too recently).
 * Tokens are printed only with --include-token. No ANSI escapes unless the
 * output is a terminal.
 */
import { Command, Options, Span, ValidationError } from "@effect/cli"
import * as FileSystem from "@effect/platform/FileSystem"
import { Clock, Console, Context, Duration, Effect, Layer, Option, Redacted, Schema, Stream } from "effect"
import * as AuthDocument from "./AuthDocument.js"
import { AuthManager, settingsConfig } from "./AuthManager.js"
import { defaultSettings } from "./internal/refreshState.js"
import type { AuthState, Settings } from "./internal/refreshState.js"

/**
 * What the commands need from the process they run in: standard input and
 * the exit code. `layerNode` binds them to Node's `process`; tests supply
 * their own.
 */
export class CliIo extends Context.Tag("effect-auth-manager/Cli/CliIo")<CliIo, {
  readonly stdin: Stream.Stream<Uint8Array, Error>
  readonly setExitCode: (code: number) => Effect.Effect<void>
  /** Whether standard output and standard error are terminals (ANSI styling is kept only for those). */
  readonly terminal: { readonly stdout: boolean; readonly stderr: boolean }
}>() {
  static readonly layerNode: Layer.Layer<CliIo> = Layer.sync(CliIo, () => ({
    terminal: {
      stdout: process.stdout.isTTY === true && process.env.NO_COLOR === undefined,
      stderr: process.stderr.isTTY === true && process.env.NO_COLOR === undefined
    },
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

/** Exit code of `refresh` when it did nothing because the token was refreshed too recently. */
export const exitNotRefreshed = 3

/**
 * The one JSON vocabulary of `status --json` and `watch --json`. `status` is
 * "loggedOut", "healthy", "coolingDown" or "poisoned".
 */
export const jsonView = (state: AuthState) => ({
  status: state.method === null
    ? "loggedOut"
    : state.status === "cooling-down"
    ? "coolingDown"
    : state.status,
  authMethod: state.method,
  email: state.email,
  planType: state.planType,
  reason: state.reason,
  retryAt: state.retryAt === null ? null : new Date(state.retryAt).toISOString(),
  lastRefresh: state.lastRefreshAt === null ? null : new Date(state.lastRefreshAt).toISOString()
})

const json = Options.boolean("json").pipe(Options.withDescription("Print JSON, for scripts"))
const includeToken = Options.boolean("include-token").pipe(
  Options.withDescription("Print the access token (or API key). It is a secret: never paste it anywhere.")
)
const refresh = Options.boolean("refresh").pipe(
  Options.withDescription("Refresh the access token first (without it, status only reads: no network)")
)

export const status = Command.make("status", { json, includeToken, refresh }, (options) =>
  Effect.gen(function*() {
    const auth = yield* AuthManager
    // Without --refresh, a read: what is stored, even a stale token, and no network.
    const result = yield* auth.getAuthStatus({
      includeToken: options.includeToken,
      refreshToken: options.refresh,
      noRefresh: !options.refresh
    })
    const state = yield* auth.state
    const token = result.authToken === null ? null : Redacted.value(result.authToken)
    if (options.json) {
      yield* Console.log(JSON.stringify({ ...jsonView(state), ...(options.includeToken ? { authToken: token } : {}) }))
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
      // The Codex CLI refuses a file whose id_token it cannot read: never write one.
      const problem = AuthDocument.idTokenProblem(tokens.id_token)
      if (Option.isSome(problem)) {
        yield* Console.error(`${tokensFile.value}: ${problem.value}. Nothing was written.`)
        return yield* setExitCode(1)
      }
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

const ago = (ms: number) => Duration.format(Duration.seconds(Math.max(0, Math.round(ms / 1000))))

export const refreshCommand = Command.make("refresh", {}, () =>
  Effect.gen(function*() {
    const auth = yield* AuthManager
    const before = yield* auth.state
    if (before.method !== "chatgpt") {
      yield* Console.log(
        before.method === "apikey" ? "Signed in with an API key: there is no token to refresh." : "Not signed in: nothing to refresh."
      )
      return yield* setExitCode(before.method === null ? 1 : 0)
    }
    const outcome = yield* Effect.either(auth.refresh)
    if (outcome._tag === "Left") {
      yield* Console.error(outcome.left.message)
      return yield* setExitCode(1)
    }
    const after = yield* auth.state
    if (after.hash === before.hash && after.lastRefreshAt !== null) {
      // Success without a new snapshot: the minimum interval between refreshes applied.
      const interval = (yield* Effect.orElseSucceed(settingsConfig, (): Partial<Settings> => ({}))).minRefreshInterval ??
        defaultSettings.minRefreshInterval
      const since = (yield* Clock.currentTimeMillis) - after.lastRefreshAt
      yield* Console.log(
        `Not refreshed: the token was refreshed ${ago(since)} ago; the next refresh is allowed in ` +
          `${ago(Duration.toMillis(interval) - since)}.`
      )
      return yield* setExitCode(exitNotRefreshed)
    }
    yield* Console.log(`Refreshed. ${describe(after)}`)
    yield* setExitCode(usable(after) ? 0 : 1)
  })).pipe(Command.withDescription("Refresh the access token now (at most once per minimum interval)"))

export const watch = Command.make("watch", { json }, (options) =>
  Effect.flatMap(AuthManager, (auth) =>
    auth.changes.pipe(
      Stream.runForEach((state) =>
        Console.log(
          options.json
            ? JSON.stringify(jsonView(state))
            : `${new Date().toISOString()}  ${describe(state).replace(/\n/g, " ")}`
        )
      )
    ))).pipe(Command.withDescription("Print each change of the credentials until interrupted"))

/** `effect-auth` and its subcommands. */
export const command = Command.make("effect-auth").pipe(
  Command.withDescription(
    "The credentials of $CODEX_HOME/auth.json (the Codex CLI's), kept usable. " +
      "Commands: status, login, logout, refresh, watch; `effect-auth COMMAND --help` for each."
  ),
  Command.withSubcommands([status, login, logout, refreshCommand, watch])
)

const cli = Command.run(command, {
  name: "effect-auth",
  version: "0.1.0",
  summary: Span.text("sign in, check and refresh Codex credentials")
})

const ansiEscape = /\u001b\[[0-9;]*[A-Za-z]/g
const plain = (parts: ReadonlyArray<unknown>) =>
  parts.map((part) => (typeof part === "string" ? part.replace(ansiEscape, "") : part))

/** The console, without ANSI styling on an output that is not a terminal. */
const consoleFor = (terminal: { readonly stdout: boolean; readonly stderr: boolean }) =>
  Effect.map(Effect.console, (console): Console.Console => ({
    ...console,
    log: (...parts) => terminal.stdout ? console.log(...parts) : console.log(...plain(parts)),
    error: (...parts) => terminal.stderr ? console.error(...parts) : console.error(...plain(parts))
  }))

/**
 * Runs `effect-auth` on the given `process.argv` (node, script, args…). Bad
 * usage sets exit code 2; any other failure is printed as a sentence for the
 * person at the terminal (no stack trace) with exit code 1.
 *
 * @example
 * Cli.run(process.argv).pipe(Effect.provide(layers), NodeRuntime.runMain)
 */
export const run = (argv: ReadonlyArray<string>) =>
  Effect.flatMap(CliIo, (io) =>
    Effect.flatMap(consoleFor(io.terminal), (console) =>
      cli(argv).pipe(
        Effect.catchIf(ValidationError.isValidationError, () => setExitCode(2)),
        Effect.catchAll((error) => Console.error(error.message).pipe(Effect.zipRight(setExitCode(1)))),
        Effect.withConsole(console)
      )))
