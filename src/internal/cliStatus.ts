/**
 * What `effect-auth status` needs, without `@effect/cli`: the command's
 * options, its handler, and the process bindings. `Cli.ts` builds the full
 * command line on these; the `bin` answers a plain `status` with them alone,
 * so a shell prompt does not load the parser, its help renderer and its
 * config-file readers (yaml, toml, ini) to print one line.
 */
import { Console, Context, Effect, Layer, Redacted, Stream } from "effect"
import { AuthManager } from "../AuthManager.js"
import type { AuthState } from "../AuthManager.js"

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

export const setExitCode = (code: number) => Effect.flatMap(CliIo, (io) => io.setExitCode(code))

export const usable = (state: AuthState) => state.method !== null && state.status !== "poisoned"

export const describe = (state: AuthState): string => {
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

export interface StatusOptions {
  readonly json: boolean
  readonly includeToken: boolean
  readonly refresh: boolean
}

/** `effect-auth status`: who is signed in, whether the credentials work; exit code 0 when usable. */
export const status = (options: StatusOptions) =>
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
    // Asked to refresh, a refresh that failed (backing off) is not success, whatever token is held.
    yield* setExitCode(usable(state) && !(options.refresh && state.status === "cooling-down") ? 0 : 1)
  })

const ansiEscape = /\u001b\[[0-9;]*[A-Za-z]/g
const plain = (parts: ReadonlyArray<unknown>) =>
  parts.map((part) => (typeof part === "string" ? part.replace(ansiEscape, "") : part))

/** The console, without ANSI styling on an output that is not a terminal. */
export const consoleFor = (terminal: { readonly stdout: boolean; readonly stderr: boolean }) =>
  Effect.map(Effect.console, (console): Console.Console => ({
    ...console,
    log: (...parts) => terminal.stdout ? console.log(...parts) : console.log(...plain(parts)),
    error: (...parts) => terminal.stderr ? console.error(...parts) : console.error(...plain(parts))
  }))

/** `status` as `Cli.run` runs it (the same console), for the bin's plain `status`. */
export const runStatus = (options: StatusOptions) =>
  Effect.flatMap(CliIo, (io) =>
    Effect.flatMap(consoleFor(io.terminal), (console) => Effect.withConsole(status(options), console)))

const flags = { "--json": "json", "--include-token": "includeToken", "--refresh": "refresh" } as const

/**
 * The options of a plain `status` command line (the arguments after the
 * program), or `undefined` for anything else — help, other commands, unknown
 * or repeated flags — which the full parser answers.
 */
export const parseStatusArgs = (args: ReadonlyArray<string>): StatusOptions | undefined => {
  if (args[0] !== "status") return undefined
  const options = { json: false, includeToken: false, refresh: false }
  for (const arg of args.slice(1)) {
    const key = Object.hasOwn(flags, arg) ? flags[arg as keyof typeof flags] : undefined
    if (key === undefined || options[key]) return undefined
    options[key] = true
  }
  return options
}
