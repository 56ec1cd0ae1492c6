/**
 * The auth part of the Codex app-server wire protocol (SPEC §7) over any
 * line transport: newline-delimited JSON messages, `{id, method, params}`
 * requests, `{id, result}` / `{id, error}` responses, `{method, params}`
 * notifications, and no `"jsonrpc"` field. `examples/app-server.ts` runs it
 * on stdio.
 */
import { type Context, Data, Deferred, Effect, Either, Fiber, FiberSet, Option, Redacted, Ref, Schema, Stream } from "effect"
import * as AuthDocument from "../AuthDocument.js"
import { AuthManager } from "../AuthManager.js"
import type { AuthStoreError } from "../Errors.js"
import * as AppServerLogin from "../internal/appServerLogin.js"
import { describeIssues } from "../internal/describeIssues.js"
import { nestingDepth } from "../internal/rawJson.js"

/** JSON-RPC 2.0 error codes. */
export const ErrorCode = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603
} as const

class RpcFailure extends Data.TaggedError("RpcFailure")<{ readonly code: number; readonly message: string }> {}

export type RequestId = string | number

/** What `initialize` reports about this server. */
export interface ServerInfo {
  readonly codexHome: string
  readonly version: string
  readonly platformOs: string
  readonly platformFamily: string
}

/** The plan types the Codex protocol knows; anything else is reported as "unknown". */
const planTypes = new Set([
  "free", "go", "plus", "pro", "prolite", "promax", "team", "self_serve_business_prolite",
  "self_serve_business_usage_based", "business", "ent26", "enterprise_cbp_automation",
  "enterprise_cbp_usage_based", "enterprise", "edu", "edu_plus", "edu_pro", "sci", "sci_plus", "unknown"
])
const planTypeOf = (plan: string | null): string => (plan !== null && planTypes.has(plan) ? plan : "unknown")

const OptionalFlag = Schema.optional(Schema.NullOr(Schema.Boolean))
const InitializeParams = Schema.Struct({
  clientInfo: Schema.optional(Schema.Struct({ name: Schema.String, version: Schema.String }))
})
const GetAuthStatusParams = Schema.Struct({ includeToken: OptionalFlag, refreshToken: OptionalFlag })
const GetAccountParams = Schema.Struct({ refreshToken: OptionalFlag })
const LoginParams = Schema.Union(
  Schema.Struct({ type: Schema.Literal("apiKey"), apiKey: Schema.String }),
  Schema.Struct({
    type: Schema.Literal("chatgptAuthTokens"),
    accessToken: Schema.String,
    chatgptAccountId: Schema.String,
    chatgptPlanType: Schema.optional(Schema.NullOr(Schema.String))
  }),
  Schema.Struct({ type: Schema.Literal("chatgpt", "chatgptDeviceCode") })
)

const decodeParams = <A, I>(schema: Schema.Schema<A, I>, params: unknown) =>
  Either.match(Schema.decodeUnknownEither(schema)(params ?? {}), {
    onLeft: (error) =>
      Effect.fail(new RpcFailure({ code: ErrorCode.invalidParams, message: `Invalid params: ${describeIssues(error)}` })),
    onRight: Effect.succeed
  })

/**
 * Tokens a host app supplied with `chatgptAuthTokens`: kept in memory only,
 * never written to `auth.json`, never refreshed here (the host refreshes them).
 */
interface ExternalTokens {
  readonly accessToken: Redacted.Redacted<string>
  readonly accountId: string
  readonly planType: string | null
  readonly email: string | null
}

type Incoming =
  | { readonly _tag: "Request"; readonly id: RequestId; readonly method: string; readonly params: unknown }
  | { readonly _tag: "Notification"; readonly method: string }
  | { readonly _tag: "Ignored" }
  | { readonly _tag: "Invalid"; readonly id: RequestId | null; readonly code: number; readonly message: string }

const isRequestId = (id: unknown): id is RequestId =>
  typeof id === "string" || (typeof id === "number" && Number.isSafeInteger(id))

const leadingId = /^\s*\{\s*"id"\s*:\s*("(?:[^"\\\n]|\\.){0,256}"|-?\d{1,16})\s*[,}]/

/**
 * The id of a line that could not be read as a message, when it opens with
 * one (`{"id": …`): the error can then be sent to the request it answers.
 */
export const recoverId = (line: string): RequestId | null => {
  const match = leadingId.exec(line.slice(0, 1024))
  if (match === null) return null
  try {
    const id: unknown = JSON.parse(match[1]!)
    return isRequestId(id) ? id : null
  } catch {
    return null
  }
}

/** The deepest nesting of arrays and objects a message may have. */
export const maxNesting = 64

/** Reads one line as a message of the protocol. */
export const parseLine = (line: string): Incoming => {
  let message: unknown
  try {
    message = JSON.parse(line)
  } catch {
    return { _tag: "Invalid", id: recoverId(line), code: ErrorCode.parseError, message: "Parse error: the line is not valid JSON" }
  }
  if (message === null || typeof message !== "object" || Array.isArray(message)) {
    return { _tag: "Invalid", id: null, code: ErrorCode.invalidRequest, message: "Invalid request: a message is a JSON object" }
  }
  const { id, method, params } = message as { readonly id?: unknown; readonly method?: unknown; readonly params?: unknown }
  if (id !== undefined && !isRequestId(id)) {
    return { _tag: "Invalid", id: null, code: ErrorCode.invalidRequest, message: "Invalid request: id must be a string or an integer" }
  }
  // Deeper values would only make the decoders recurse: no message of the protocol nests like this.
  if (nestingDepth(line) > maxNesting) {
    return {
      _tag: "Invalid",
      id: id ?? null,
      code: ErrorCode.invalidRequest,
      message: `Invalid request: nested more than ${maxNesting} levels deep`
    }
  }
  if (typeof method !== "string") {
    // A response to a request of ours: this server sends none, so there is nothing to match it with.
    if (id !== undefined && ("result" in message || "error" in message)) return { _tag: "Ignored" }
    return { _tag: "Invalid", id: id ?? null, code: ErrorCode.invalidRequest, message: "Invalid request: method must be a string" }
  }
  return id === undefined ? { _tag: "Notification", method } : { _tag: "Request", id, method, params }
}

/** A line longer than the server reads: only its start is kept, to answer the request it opens. */
export class OversizedLine extends Data.TaggedClass("OversizedLine")<{ readonly prefix: string; readonly length: number }> {}

const endOfInput = Symbol("endOfInput")

interface Splitter {
  // Appended to in place: each line starts a new array.
  readonly parts: Array<string>
  readonly length: number
  readonly prefix: string | null
}

/**
 * Splits text into lines (`\n` or `\r\n`) of at most `maxLength` characters.
 * A longer line is never held in memory: it becomes an `OversizedLine` with
 * its first kilobyte, and the rest of it is skipped as it arrives.
 */
export const splitLines = (maxLength: number) => <E, R>(text: Stream.Stream<string, E, R>): Stream.Stream<string | OversizedLine, E, R> =>
  Stream.suspend(() => Stream.concat(text, Stream.succeed(endOfInput)).pipe(
    Stream.mapAccum({ parts: [], length: 0, prefix: null } as Splitter, (state, chunk): readonly [Splitter, ReadonlyArray<string | OversizedLine>] => {
      const out: Array<string | OversizedLine> = []
      let { length, parts, prefix } = state
      const endLine = () => {
        if (prefix !== null) out.push(new OversizedLine({ prefix, length }))
        else {
          const line = parts.join("")
          out.push(line.endsWith("\r") ? line.slice(0, -1) : line)
        }
        parts = []
        length = 0
        prefix = null
      }
      if (chunk === endOfInput) {
        if (length > 0 || prefix !== null) endLine()
        return [{ parts: [], length: 0, prefix: null }, out]
      }
      let start = 0
      for (;;) {
        const newline = chunk.indexOf("\n", start)
        const piece = newline === -1 ? chunk.slice(start) : chunk.slice(start, newline)
        if (prefix === null && length + piece.length > maxLength) {
          prefix = (parts.join("") + piece.slice(0, 1024)).slice(0, 1024)
          parts = []
        } else if (prefix === null) parts.push(piece)
        length += piece.length
        if (newline === -1) break
        endLine()
        start = newline + 1
      }
      return [{ parts, length, prefix }, out]
    }),
    Stream.mapConcat((lines) => lines)
  ))

const quoted = (method: string) => JSON.stringify(method.length > 80 ? `${method.slice(0, 80)}…` : method)

/** How much `serve` takes in before it waits for its answers to be written. */
export interface ServeOptions {
  /** Requests read but not yet answered (and written) before reading stops (default 64). */
  readonly maxPending?: number
}

/** What a state-changing request announces once it is answered. */
type After = Effect.Effect<void>

/** The requests that change the credentials: every later request waits for them (Codex answers in order). */
const stateChanging = new Set(["account/login/start", "account/login/cancel", "account/logout"])

/** The requests answered from the account (every one but `initialize`). */
const accountMethods = new Set(["getAuthStatus", "account/read", ...stateChanging])

/**
 * Serves the protocol over `input` lines, writing each outgoing message (one
 * JSON line) with `write`, which should complete once the line is handed
 * over (that is the backpressure: at most `maxPending` requests wait for
 * their answers before reading stops). A request that signs in or out runs
 * after every earlier one of its kind, and every later request waits for
 * it; the others run concurrently, so a slow refresh delays only the
 * answers that asked for it. Returns once the input ends and every request
 * has been answered.
 */
export const serve = <E, R>(
  input: Stream.Stream<string | OversizedLine, E, R>,
  write: (line: string) => Effect.Effect<void>,
  info: ServerInfo,
  options: ServeOptions = {}
) =>
  Effect.flatMap(
    Effect.context<AuthManager>(),
    (services) => serveWhileStarting(input, write, info, Effect.succeed(services), options)
  )

/**
 * `serve`, answering `initialize` while `services` (the `AuthManager` and
 * the optional `SignIn`) are still being built: an editor waits for that
 * answer before anything else, and building the services reads files and
 * starts watches. Every other request waits for them. If they cannot be
 * built, the server ends with that error.
 *
 * @example
 * // The services are built in the background while the first lines are read.
 * const services = Layer.build(layer)
 * AppServer.serveWhileStarting(lines, writeLine, info, services)
 */
export const serveWhileStarting = <E, R, E2, R2>(
  input: Stream.Stream<string | OversizedLine, E, R>,
  write: (line: string) => Effect.Effect<void>,
  info: ServerInfo,
  services: Effect.Effect<Context.Context<AuthManager>, E2, R2>,
  options: ServeOptions = {}
) =>
  Effect.gen(function*() {
    const initialized = yield* Ref.make(false)
    const external = yield* Ref.make(Option.none<ExternalTokens>())
    const send = (message: object) => write(JSON.stringify(message))
    const notify = (method: string, params: object) =>
      Effect.whenEffect(send({ method, params }), Ref.get(initialized))
    const notifyAccount = (authMode: string | null, planType: string | null) =>
      notify("account/updated", { authMode, planType })
    // Browser and device sign-ins save and send account/login/completed holding `announcing`.
    const announcing = yield* Effect.makeSemaphore(1)

    const initialize = (params: unknown) =>
      Effect.gen(function*() {
        if (yield* Ref.get(initialized)) {
          return yield* new RpcFailure({ code: ErrorCode.invalidRequest, message: "Already initialized" })
        }
        const { clientInfo } = yield* decodeParams(InitializeParams, params)
        yield* Ref.set(initialized, true)
        const client = clientInfo === undefined ? "" : ` ${clientInfo.name}/${clientInfo.version}`
        return {
          codexHome: info.codexHome,
          platformFamily: info.platformFamily,
          platformOs: info.platformOs,
          userAgent: `effect-auth-manager/${info.version} (${info.platformOs}; ${process.arch})${client}`
        }
      })

    const failures = <A, R2>(handler: Effect.Effect<A, RpcFailure | AuthStoreError, R2>) =>
      handler.pipe(
        Effect.catchTag("AuthStoreError", (error) =>
          Effect.fail(new RpcFailure({ code: ErrorCode.internalError, message: error.message }))),
        Effect.catchAllDefect((defect) =>
          Effect.logError("request failed unexpectedly", defect).pipe(
            Effect.zipRight(Effect.fail(new RpcFailure({ code: ErrorCode.internalError, message: "Internal error" })))
          ))
      )

    const noAnnouncement: After = Effect.void
    const withNothingToAnnounce = <A, E2, R2>(effect: Effect.Effect<A, E2, R2>) =>
      Effect.map(effect, (result) => [result, noAnnouncement] as const)

    /** The requests about the account, once the services are built. */
    const makeAccount = Effect.gen(function*() {
      const auth = yield* AuthManager
      // The snapshot clients were last told about. A sign-in through this connection announces
      // its own result, after its answer (as Codex does); the watch announces everyone else's.
      const announced = yield* Ref.make((yield* auth.state).hash)
      const logins = yield* AppServerLogin.make(send, announcing)
      const announceCurrent = Effect.gen(function*() {
        const state = yield* auth.state
        if ((yield* Ref.getAndSet(announced, state.hash)) === state.hash) return
        yield* notifyAccount(state.method, state.method === "chatgpt" ? planTypeOf(state.planType) : null)
      })
      // A new snapshot is news to clients; a change of its health alone is not.
      yield* auth.changes.pipe(
        Stream.changesWith((a, b) => a.hash === b.hash),
        Stream.drop(1),
        Stream.runForEach(() => announcing.withPermits(1)(announceCurrent)),
        Effect.forkScoped
      )

      const getAuthStatus = (params: unknown) =>
        Effect.gen(function*() {
          const { includeToken, refreshToken } = yield* decodeParams(GetAuthStatusParams, params)
          const supplied = yield* Ref.get(external)
          if (Option.isSome(supplied)) {
            return {
              authMethod: "chatgptAuthTokens",
              authToken: includeToken === true ? Redacted.value(supplied.value.accessToken) : null,
              requiresOpenaiAuth: true
            }
          }
          const status = yield* auth.getAuthStatus({ includeToken: includeToken === true, refreshToken: refreshToken === true })
          return { ...status, authToken: status.authToken === null ? null : Redacted.value(status.authToken) }
        })

      const readAccount = (params: unknown) =>
        Effect.gen(function*() {
          const { refreshToken } = yield* decodeParams(GetAccountParams, params)
          const supplied = yield* Ref.get(external)
          if (Option.isSome(supplied)) {
            const { email, planType } = supplied.value
            return { account: { type: "chatgpt", email, planType: planTypeOf(planType) }, requiresOpenaiAuth: true }
          }
          const { account, requiresOpenaiAuth } = yield* auth.readAccount({ refreshToken: refreshToken === true })
          return {
            account: account?.type === "chatgpt" ? { ...account, planType: planTypeOf(account.planType) } : account,
            requiresOpenaiAuth
          }
        })

      const loginCompleted = (loginId: string | null) =>
        notify("account/login/completed", { loginId, success: true, error: null })

      const login = (params: unknown) =>
        Effect.gen(function*() {
          const request = yield* decodeParams(LoginParams, params)
          switch (request.type) {
            case "apiKey": {
              yield* logins.cancelInProgress
              yield* Ref.set(external, Option.none())
              yield* auth.loginWithApiKey(Redacted.make(request.apiKey))
              const after: After = Effect.zipRight(loginCompleted(null), announceCurrent)
              return [{ type: "apiKey" }, after] as const
            }
            case "chatgptAuthTokens": {
              const claims = AuthDocument.jwtPayload(request.accessToken).pipe(Option.getOrElse(() => ({})))
              const email = typeof (claims as { email?: unknown }).email === "string" ? (claims as { email: string }).email : null
              const planType = request.chatgptPlanType ?? null
              yield* Ref.set(external, Option.some({ accessToken: Redacted.make(request.accessToken), accountId: request.chatgptAccountId, planType, email }))
              const after: After = Effect.zipRight(loginCompleted(null), notifyAccount("chatgptAuthTokens", planTypeOf(planType)))
              return [{ type: "chatgptAuthTokens" }, after] as const
            }
            default: {
              const started = yield* logins.start(request.type).pipe(Effect.mapError((error) => new RpcFailure({ code: error.code, message: error.message })))
              return [started, Effect.void as After] as const
            }
          }
        })

      const logout = Effect.gen(function*() {
        const hadExternal = Option.isSome(yield* Ref.getAndSet(external, Option.none()))
        const before = yield* Ref.get(announced)
        const after = yield* auth.logout
        // The library's own change is announced as any other; a host's in-memory tokens going away is news too.
        const announce: After = hadExternal && before === after.hash ? notifyAccount(null, null) : announceCurrent
        return [{}, announce] as const
      })

      return (method: string, params: unknown): Effect.Effect<readonly [unknown, After], RpcFailure> => {
        switch (method) {
          case "getAuthStatus":
            return failures(withNothingToAnnounce(getAuthStatus(params)))
          case "account/read":
            return failures(withNothingToAnnounce(readAccount(params)))
          case "account/login/start":
            return failures(login(params))
          case "account/logout":
            return failures(logout)
          case "account/login/cancel":
            return failures(withNothingToAnnounce(logins.cancel(params).pipe(Effect.mapError((error) => new RpcFailure({ code: error.code, message: error.message })))))
          default:
            return Effect.fail(new RpcFailure({ code: ErrorCode.methodNotFound, message: `Method not found: ${quoted(method)}` }))
        }
      }
    })
    // Built beside the reading of the first lines: `initialize` does not wait for it.
    const starting = yield* services.pipe(
      Effect.flatMap((context) => Effect.provide(makeAccount, context)),
      Effect.forkScoped
    )
    const account = Fiber.join(starting).pipe(Effect.orDie)

    const dispatch = (method: string, params: unknown): Effect.Effect<readonly [unknown, After], RpcFailure> =>
      accountMethods.has(method)
        ? Effect.flatMap(account, (handle) => handle(method, params))
        : Effect.fail(new RpcFailure({ code: ErrorCode.methodNotFound, message: `Method not found: ${quoted(method)}` }))

    const answer = (id: RequestId, handler: Effect.Effect<readonly [unknown, After], RpcFailure>) =>
      Effect.flatMap(Effect.either(handler), (outcome) =>
        Either.match(outcome, {
          onLeft: (failure) => send({ id, error: { code: failure.code, message: failure.message } }),
          onRight: ([result, after]) => Effect.zipRight(send({ id, result }), after)
        }))

    const refuse = (id: RequestId | null, code: number, message: string) =>
      id === null
        // The Codex schema has no error without an id: a line that names none is only logged.
        ? Effect.logWarning("Ignored a line that is not a request").pipe(Effect.annotateLogs({ code, problem: message }))
        : send({ id, error: { code, message } })

    const fibers = yield* FiberSet.make()
    const pending = yield* Effect.makeSemaphore(options.maxPending ?? 64)
    // The last state-changing request received; every later request waits for it to be answered.
    const settled = yield* Deferred.make<void>()
    yield* Deferred.succeed(settled, undefined)
    let barrier = settled

    const schedule = (message: Extract<Incoming, { readonly _tag: "Request" }>) =>
      Effect.gen(function*() {
        const previous = barrier
        const changes = stateChanging.has(message.method)
        const done = changes ? yield* Deferred.make<void>() : undefined
        if (done !== undefined) barrier = done
        yield* pending.take(1)
        const handled = answer(message.id, dispatch(message.method, message.params))
        yield* FiberSet.run(
          fibers,
          Deferred.await(previous).pipe(
            Effect.zipRight(changes ? announcing.withPermits(1)(handled) : handled),
            Effect.ensuring(done === undefined ? pending.release(1) : Effect.zipRight(Deferred.succeed(done, undefined), pending.release(1)))
          )
        )
      })

    const reading = input.pipe(
      Stream.runForEach((line) => {
        if (typeof line !== "string") {
          return refuse(
            recoverId(line.prefix),
            ErrorCode.invalidRequest,
            `Invalid request: the line is ${line.length} characters long, more than this server reads`
          )
        }
        if (line.trim().length === 0) return Effect.void
        const message = parseLine(line)
        switch (message._tag) {
          case "Invalid":
            return refuse(message.id, message.code, message.message)
          case "Notification":
          case "Ignored":
            return Effect.void
          case "Request":
            // Decided in line, in the order the lines came: a request sent before `initialize`
            // is refused even if `initialize` follows it before it would have run.
            if (message.method === "initialize") {
              return answer(message.id, Effect.map(initialize(message.params), (result) => [result, noAnnouncement] as const))
            }
            return Effect.flatMap(Ref.get(initialized), (ready) =>
              ready
                ? schedule(message)
                : refuse(message.id, ErrorCode.invalidRequest, "Not initialized"))
        }
      })
    )
    // Services that cannot be built end the server with their error, whatever it was reading.
    yield* Effect.zip(reading, Fiber.join(starting), { concurrent: true })
    yield* FiberSet.awaitEmpty(fibers)
  })
