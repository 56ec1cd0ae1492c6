/**
 * The commands of `effect-auth`, the credentials of `$CODEX_HOME/auth.json`
 * from a shell (Effect-TS/examples `templates/cli`: the commands live here,
 * the `bin` file only runs them, so they can be tested in process).
 *
 *   effect-auth status [--json] [--include-token] [--refresh]
 *   effect-auth login [--device] [--issuer URL --client-id ID …] | --api-key-stdin | --tokens-file FILE
 *   effect-auth logout | refresh | watch
 *
 * Exit codes: 0 usable credentials, 1 logged out or poisoned, or a refresh asked
 * for (`status --refresh`) failed, or the command failed, 2 bad usage, 3 `refresh` did nothing (refreshed too recently).
 * `logout` exits 0 also when nobody was signed in (afterwards nobody is, as asked), and says so.
 * Tokens are printed only with --include-token. No ANSI escapes unless the
 * output is a terminal; help pages fit in 80 columns (internal/cliHelp.ts).
 */
import { Command, Options, Span, ValidationError } from "@effect/cli"
import * as FileSystem from "@effect/platform/FileSystem"
import { Clock, Console, Duration, Effect, Option, Redacted, Schema, Stream } from "effect"
import { Configuration } from "../config/Configuration.js"
import { defaultSettings } from "../config/Settings.js"
import * as AuthDocument from "../document/AuthDocument.js"
import { scrubText } from "../errors/Errors.js"
import { AuthManager, settingsOf } from "../manager/AuthManager.js"
import { AuthStore } from "../stores/AuthStore.js"
import { readBoundedText } from "../util/boundedRead.js"
import {
  CliIo,
  consoleFor,
  describe,
  jsonView,
  notSignedIn,
  setExitCode,
  status as showStatus,
  usable
} from "./CliStatus.js"
import * as CliHelp from "./internal/cliHelp.js"
import * as CliSignIn from "./internal/cliSignIn.js"

export { CliIo, jsonView }

/** Exit code of `refresh` when it did nothing because the token was refreshed too recently. */
export const exitNotRefreshed = 3

// What each command does, as its help and the program's list of commands say it.
const descriptions = {
  status: "Show who is signed in and whether the credentials work",
  login: "Sign in: in a browser on this computer (the default), with a code entered on another device " +
    "(--device), or with an API key (--api-key-stdin) or ChatGPT tokens (--tokens-file FILE) you already have",
  logout: "Remove the stored credentials",
  refresh: "Refresh the access token now (at most once per minimum interval)",
  watch: "Print each change of the credentials until interrupted"
} as const

const json = Options.boolean("json").pipe(Options.withDescription("Print JSON, for scripts"))
const includeToken = Options.boolean("include-token").pipe(
  Options.withDescription("Print the access token (or API key). It is a secret: never paste it anywhere.")
)
const refresh = Options.boolean("refresh").pipe(
  Options.withDescription("Refresh the access token first (without it, status only reads: no network)")
)

export const status = Command.make("status", { json, includeToken, refresh }, showStatus).pipe(
  Command.withDescription(descriptions.status)
)

// What the person points at is read within bounds: an API key or a tokens file is a few KiB.
const maxStdinBytes = 64 * 1024
const readStdin = Effect.flatMap(CliIo, (io) =>
  io.stdin.pipe(
    Stream.runFoldWhile(
      { size: 0, chunks: [] as Array<Uint8Array> },
      (acc) => acc.size <= maxStdinBytes,
      (acc, bytes) => ({ size: acc.size + bytes.length, chunks: [...acc.chunks, bytes] })
    ),
    Effect.filterOrFail(
      (acc) => acc.size <= maxStdinBytes,
      () => new Error(`standard input is larger than ${maxStdinBytes} bytes`)
    ),
    Effect.map((acc) => Buffer.concat(acc.chunks).toString("utf8"))
  ))

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
  ...CliSignIn.options,
  apiKeyStdin: Options.boolean("api-key-stdin").pipe(Options.withDescription("Read an API key from standard input")),
  tokensFile: Options.file("tokens-file", { exists: "yes" }).pipe(
    Options.withDescription(
      "Sign in with ChatGPT tokens from a JSON file ({id_token, access_token, refresh_token} or an auth.json)"
    ),
    Options.optional
  )
}, ({ apiKeyStdin, tokensFile, ...signInFlags }) =>
  Effect.gen(function*() {
    const auth = yield* AuthManager
    if (apiKeyStdin && Option.isSome(tokensFile)) {
      yield* Console.error("Give at most one of --api-key-stdin and --tokens-file FILE (see effect-auth login --help).")
      return yield* setExitCode(2)
    }
    // Neither: sign in in a browser, or with a device code.
    if (!apiKeyStdin && Option.isNone(tokensFile)) {
      const outcome = yield* Effect.either(CliSignIn.run(signInFlags, (yield* CliIo).terminal))
      if (outcome._tag === "Left") {
        yield* Console.error(CliSignIn.failureText(outcome.left))
        return yield* setExitCode(outcome.left instanceof CliSignIn.UsageError ? 2 : 1)
      }
      yield* Console.log(describe(outcome.right))
      return yield* setExitCode(0)
    }
    if (apiKeyStdin) {
      const key = (yield* readStdin).trim()
      if (key.length === 0) {
        yield* Console.error("No API key on standard input.")
        return yield* setExitCode(1)
      }
      yield* auth.loginWithApiKey(Redacted.make(key))
    } else if (Option.isSome(tokensFile)) {
      const text = yield* Effect.flatMap(FileSystem.FileSystem, (fs) => readBoundedText(fs, tokensFile.value)).pipe(
        Effect.mapError((error) =>
          new Error(`${tokensFile.value}: ${error._tag === "FileRefused" ? error.problem : error.message}`)
        )
      )
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
  })).pipe(Command.withDescription(descriptions.login))

// Signing out twice is not an error (exit 0: afterwards nobody is signed in, as asked), but it says so.
export const logout = Command.make("logout", {}, () =>
  Effect.gen(function*() {
    const auth = yield* AuthManager
    const before = yield* auth.state
    yield* auth.logout
    yield* Console.log(before.method === null ? "Not signed in; nothing to sign out." : "Signed out.")
  })).pipe(Command.withDescription(descriptions.logout))

const ago = (ms: number) => Duration.format(Duration.seconds(Math.max(0, Math.round(ms / 1000))))

export const refreshCommand = Command.make("refresh", {}, () =>
  Effect.gen(function*() {
    const auth = yield* AuthManager
    const before = yield* auth.state
    if (before.method !== "chatgpt") {
      yield* Console.log(
        before.method === "apikey"
          ? "Signed in with an API key: there is no token to refresh."
          : `Nothing to refresh. ${notSignedIn((yield* AuthStore).location)}`
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
      const interval = settingsOf(yield* Configuration).minRefreshInterval ?? defaultSettings.minRefreshInterval
      const since = (yield* Clock.currentTimeMillis) - after.lastRefreshAt
      yield* Console.log(
        `Not refreshed: the token was refreshed ${ago(since)} ago; the next refresh is allowed in ` +
          `${ago(Duration.toMillis(interval) - since)}.`
      )
      return yield* setExitCode(exitNotRefreshed)
    }
    yield* Console.log(`Refreshed. ${describe(after)}`)
    yield* setExitCode(usable(after) ? 0 : 1)
  })).pipe(Command.withDescription(descriptions.refresh))

export const watch = Command.make("watch", { json }, (options) =>
  Effect.gen(function*() {
    const auth = yield* AuthManager
    const { location } = yield* AuthStore
    yield* auth.changes.pipe(
      Stream.runForEach((state) =>
        Console.log(
          options.json
            ? JSON.stringify(jsonView(state))
            : `${new Date().toISOString()}  ${describe(state, location).replace(/\n/g, " ")}`
        )
      )
    )
  })).pipe(Command.withDescription(descriptions.watch))

const name = "effect-auth"
const version = "0.1.0"
const summary = "sign in, check and refresh Codex credentials"
const description = "The credentials of $CODEX_HOME/auth.json (the Codex CLI's), kept usable."
// The program alone: its help lists its own options (the built-ins) apart from the commands.
const root = Command.make(name)

/** The program's help pages (src/internal/cliHelp.ts lays them out within 80 columns). */
const help: CliHelp.Program = {
  name,
  version,
  summary,
  description,
  root: CliHelp.entry(root, name, description),
  commands: [
    CliHelp.entry(status, "status", descriptions.status),
    CliHelp.entry(login, "login", descriptions.login),
    CliHelp.entry(logout, "logout", descriptions.logout),
    CliHelp.entry(refreshCommand, "refresh", descriptions.refresh),
    CliHelp.entry(watch, "watch", descriptions.watch)
  ]
}

/** `effect-auth` and its subcommands. */
export const command = root.pipe(
  Command.withDescription(description),
  Command.withSubcommands([status, login, logout, refreshCommand, watch])
)

const cli = Command.run(command, { name, version, summary: Span.text(summary) })

// Help is printed by us (its layout), everything else by @effect/cli: the built-ins (--version,
// --completions, --wizard, --log-level), parsing, and the messages of bad usage.
const runCommandLine = (argv: ReadonlyArray<string>) => {
  const asked = CliHelp.helpRequest(argv.slice(2), help.commands.map((entry) => entry.name))
  return asked === undefined ? cli(argv) : Console.log(CliHelp.page(help, asked.command))
}

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
      runCommandLine(argv).pipe(
        Effect.catchIf(ValidationError.isValidationError, () => setExitCode(2)),
        // Every other failure is a sentence, never a stack trace, and never a token it may quote.
        Effect.catchAll((error) => Console.error(scrubText(error.message)).pipe(Effect.zipRight(setExitCode(1)))),
        Effect.withConsole(console)
      )))
