/**
 * The auth part of the Codex app-server wire protocol (SPEC §7) over any
 * line transport: newline-delimited JSON messages, `{id, method, params}`
 * requests, `{id, result}` / `{id, error}` responses, `{method, params}`
 * notifications, and no `"jsonrpc"` field. `examples/app-server.ts` runs it
 * on stdio.
 */
import { Data, Effect, Either, FiberSet, Option, Redacted, Ref, Schema, Stream } from "effect"
import * as AuthDocument from "./AuthDocument.js"
import { AuthManager } from "./AuthManager.js"
import { describeIssues } from "./internal/describeIssues.js"

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

/** Reads one line as a message of the protocol. */
export const parseLine = (line: string): Incoming => {
  let message: unknown
  try {
    message = JSON.parse(line)
  } catch {
    return { _tag: "Invalid", id: null, code: ErrorCode.parseError, message: "Parse error: the line is not valid JSON" }
  }
  if (message === null || typeof message !== "object" || Array.isArray(message)) {
    return { _tag: "Invalid", id: null, code: ErrorCode.invalidRequest, message: "Invalid request: a message is a JSON object" }
  }
  const { id, method, params } = message as { readonly id?: unknown; readonly method?: unknown; readonly params?: unknown }
  if (id !== undefined && !isRequestId(id)) {
    return { _tag: "Invalid", id: null, code: ErrorCode.invalidRequest, message: "Invalid request: id must be a string or an integer" }
  }
  if (typeof method !== "string") {
    // A response to a request of ours: this server sends none, so there is nothing to match it with.
    if (id !== undefined && ("result" in message || "error" in message)) return { _tag: "Ignored" }
    return { _tag: "Invalid", id: id ?? null, code: ErrorCode.invalidRequest, message: "Invalid request: method must be a string" }
  }
  return id === undefined ? { _tag: "Notification", method } : { _tag: "Request", id, method, params }
}

const quoted = (method: string) => JSON.stringify(method.length > 80 ? `${method.slice(0, 80)}…` : method)

/**
 * Serves the protocol over `input` lines, writing each outgoing message (one
 * JSON line) with `write`. Requests run concurrently; returns once the input
 * ends and every request has been answered.
 */
export const serve = <E, R>(
  input: Stream.Stream<string, E, R>,
  write: (line: string) => Effect.Effect<void>,
  info: ServerInfo
) =>
  Effect.gen(function*() {
    const auth = yield* AuthManager
    const initialized = yield* Ref.make(false)
    const external = yield* Ref.make(Option.none<ExternalTokens>())
    const send = (message: object) => write(JSON.stringify(message))
    const notifyAccount = (authMode: string | null, planType: string | null) =>
      Effect.whenEffect(send({ method: "account/updated", params: { authMode, planType } }), Ref.get(initialized))

    // A new snapshot is news to clients; a change of its health alone is not.
    yield* auth.changes.pipe(
      Stream.changesWith((a, b) => a.hash === b.hash),
      Stream.drop(1),
      Stream.runForEach((state) => notifyAccount(state.method, state.method === "chatgpt" ? planTypeOf(state.planType) : null)),
      Effect.forkScoped
    )

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

    const login = (params: unknown) =>
      Effect.gen(function*() {
        const request = yield* decodeParams(LoginParams, params)
        switch (request.type) {
          case "apiKey": {
            yield* Ref.set(external, Option.none())
            yield* auth.loginWithApiKey(Redacted.make(request.apiKey))
            return { type: "apiKey" }
          }
          case "chatgptAuthTokens": {
            const claims = AuthDocument.jwtPayload(request.accessToken).pipe(Option.getOrElse(() => ({})))
            const email = typeof (claims as { email?: unknown }).email === "string" ? (claims as { email: string }).email : null
            const planType = request.chatgptPlanType ?? null
            yield* Ref.set(external, Option.some({ accessToken: Redacted.make(request.accessToken), accountId: request.chatgptAccountId, planType, email }))
            yield* notifyAccount("chatgptAuthTokens", planTypeOf(planType))
            return { type: "chatgptAuthTokens" }
          }
          default:
            return yield* new RpcFailure({
              code: ErrorCode.invalidParams,
              message: `Login type "${request.type}" needs a browser flow this server does not run; ` +
                "use apiKey or chatgptAuthTokens, or sign in with the Codex CLI"
            })
        }
      })

    const logout = Effect.gen(function*() {
      const hadExternal = Option.isSome(yield* Ref.getAndSet(external, Option.none()))
      const before = yield* auth.state
      const after = yield* auth.logout
      // The library announces its own changes; a host's in-memory tokens are announced here.
      if (hadExternal && before.hash === after.hash) yield* notifyAccount(null, null)
      return {}
    })

    const dispatch = (method: string, params: unknown): Effect.Effect<unknown, RpcFailure> =>
      Effect.gen(function*() {
        switch (method) {
          case "getAuthStatus":
            return yield* getAuthStatus(params)
          case "account/read":
            return yield* readAccount(params)
          case "account/login/start":
            return yield* login(params)
          case "account/logout":
            return yield* logout
          default:
            return yield* new RpcFailure({ code: ErrorCode.methodNotFound, message: `Method not found: ${quoted(method)}` })
        }
      }).pipe(
        Effect.catchTag("AuthStoreError", (error) =>
          Effect.fail(new RpcFailure({ code: ErrorCode.internalError, message: error.message }))),
        Effect.catchAllDefect((defect) =>
          Effect.logError("request failed unexpectedly", defect).pipe(
            Effect.zipRight(Effect.fail(new RpcFailure({ code: ErrorCode.internalError, message: "Internal error" })))
          ))
      )

    const answer = (id: RequestId, handler: Effect.Effect<unknown, RpcFailure>) =>
      handler.pipe(
        Effect.match({
          onFailure: (failure) => ({ id, error: { code: failure.code, message: failure.message } }),
          onSuccess: (result) => ({ id, result })
        }),
        Effect.flatMap(send)
      )

    const fibers = yield* FiberSet.make()
    yield* input.pipe(
      Stream.filter((line) => line.trim().length > 0),
      Stream.runForEach((line) => {
        const message = parseLine(line)
        switch (message._tag) {
          case "Invalid":
            return send({ id: message.id, error: { code: message.code, message: message.message } })
          case "Notification":
          case "Ignored":
            return Effect.void
          case "Request":
            // Decided in line, in the order the lines came: a request sent before `initialize`
            // is refused even if `initialize` follows it before it would have run.
            if (message.method === "initialize") return answer(message.id, initialize(message.params))
            return Effect.flatMap(Ref.get(initialized), (ready) =>
              ready
                ? FiberSet.run(fibers, answer(message.id, dispatch(message.method, message.params)))
                : answer(message.id, Effect.fail(new RpcFailure({ code: ErrorCode.invalidRequest, message: "Not initialized" }))))
        }
      })
    )
    yield* FiberSet.awaitEmpty(fibers)
  })
