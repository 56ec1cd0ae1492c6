/**
 * The app server's requests about the account (`getAuthStatus`,
 * `account/read`, sign-in and sign-out), answered from the `AuthManager` and
 * the optional `SignIn`. The protocol core (`app-server/AppServer.ts`) loads
 * this once its services are built, after answering `initialize`.
 */
import { Effect, Option, Redacted, Ref, Schema, Stream } from "effect"
import * as AuthDocument from "../../document/AuthDocument.js"
import { type AuthStoreError, TransientRefreshError } from "../../errors/Errors.js"
import { AuthManager } from "../../manager/AuthManager.js"
import type { HostRefresher, HostTokens } from "../../manager/HostTokens.js"
import { describeIssues } from "../../util/describeIssues.js"
import * as AppServerLogin from "./login.js"
import {
  type After,
  ChatgptAuthTokensRefreshResponse,
  type ClientRequest,
  decodeParams,
  ErrorCode,
  GetAccountParams,
  GetAuthStatusParams,
  LoginParams,
  planTypeOf,
  quoted,
  RpcFailure
} from "./wire.js"

/** What the account's requests share with the connection they arrive on. */
export interface Connection {
  readonly send: (message: object) => Effect.Effect<void>
  /** Sends a notification, once the client is initialized. */
  readonly notify: (method: string, params: object) => Effect.Effect<unknown>
  /** Held while a change of account is answered and announced, so that announcements keep their order. */
  readonly announcing: Effect.Semaphore
  /** Sends a request to the client and waits for its answer. */
  readonly request: ClientRequest
}

const noAnnouncement: After = Effect.void
const withNothingToAnnounce = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(effect, (result) => [result, noAnnouncement] as const)

const failures = <A, R2>(handler: Effect.Effect<A, RpcFailure | AuthStoreError, R2>) =>
  handler.pipe(
    Effect.catchTag("AuthStoreError", (error) =>
      Effect.fail(new RpcFailure({ code: ErrorCode.internalError, message: error.message }))),
    Effect.catchAllDefect((defect) =>
      Effect.logError("request failed unexpectedly", defect).pipe(
        Effect.zipRight(Effect.fail(new RpcFailure({ code: ErrorCode.internalError, message: "Internal error" })))
      )
    )
  )

/** The account's requests on `connection`: a function from a method and its params to the answer. */
/** Tokens a host app supplied (`chatgptAuthTokens`), with the email of the token's claims. */
const hostTokensOf = (accessToken: string, accountId: string, planType: string | null): HostTokens => {
  const claims = AuthDocument.jwtPayload(accessToken).pipe(Option.getOrElse(() => ({})))
  const email = (claims as { email?: unknown }).email
  return {
    accessToken: Redacted.make(accessToken),
    accountId,
    planType,
    email: typeof email === "string" ? email : null
  }
}

const decodeRefreshResponse = Schema.decodeUnknown(ChatgptAuthTokensRefreshResponse)

/**
 * Asks the client for fresh tokens after the API refused its own (`account/chatgptAuthTokens/refresh`,
 * as the Codex app server does); the time bound is the manager's.
 */
const refreshThrough = (request: ClientRequest): HostRefresher => ({ previousAccountId, reason }) =>
  request("account/chatgptAuthTokens/refresh", { reason, previousAccountId }).pipe(
    Effect.mapError((failure) => new TransientRefreshError({ kind: "client", detail: failure.message })),
    Effect.flatMap((result) =>
      decodeRefreshResponse(result).pipe(
        Effect.mapError((error) =>
          new TransientRefreshError({
            kind: "client",
            detail: `the client's answer is not valid: ${describeIssues(error)}`
          })
        )
      )
    ),
    Effect.map((answer) => hostTokensOf(answer.accessToken, answer.chatgptAccountId, answer.chatgptPlanType ?? null))
  )

export const make = ({ announcing, notify, request, send }: Connection) =>
  Effect.gen(function*() {
    const notifyAccount = (authMode: string | null, planType: string | null) =>
      notify("account/updated", { authMode, planType })

    const auth = yield* AuthManager
    const external = auth.hostTokens
    // Tokens this client supplies are refreshed by asking it, for as long as the connection lasts.
    yield* external.refreshWith(refreshThrough(request))
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
        const supplied = yield* external.current
        if (Option.isSome(supplied)) {
          return {
            authMethod: "chatgptAuthTokens",
            authToken: includeToken === true ? Redacted.value(supplied.value.accessToken) : null,
            requiresOpenaiAuth: true
          }
        }
        const status = yield* auth.getAuthStatus({
          includeToken: includeToken === true,
          refreshToken: refreshToken === true
        })
        return { ...status, authToken: status.authToken === null ? null : Redacted.value(status.authToken) }
      })

    const readAccount = (params: unknown) =>
      Effect.gen(function*() {
        const { refreshToken } = yield* decodeParams(GetAccountParams, params)
        const supplied = yield* external.current
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
            yield* external.clear
            yield* auth.loginWithApiKey(Redacted.make(request.apiKey))
            const after: After = Effect.zipRight(loginCompleted(null), announceCurrent)
            return [{ type: "apiKey" }, after] as const
          }
          case "chatgptAuthTokens": {
            const planType = request.chatgptPlanType ?? null
            yield* external.set(hostTokensOf(request.accessToken, request.chatgptAccountId, planType))
            const after: After = Effect.zipRight(
              loginCompleted(null),
              notifyAccount("chatgptAuthTokens", planTypeOf(planType))
            )
            return [{ type: "chatgptAuthTokens" }, after] as const
          }
          default: {
            const started = yield* logins.start(request.type).pipe(
              Effect.mapError((error) => new RpcFailure({ code: error.code, message: error.message }))
            )
            return [started, Effect.void as After] as const
          }
        }
      })

    const logout = Effect.gen(function*() {
      const hadExternal = yield* external.clear
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
          return failures(withNothingToAnnounce(
            logins.cancel(params).pipe(
              Effect.mapError((error) => new RpcFailure({ code: error.code, message: error.message }))
            )
          ))
        default:
          return Effect.fail(
            new RpcFailure({ code: ErrorCode.methodNotFound, message: `Method not found: ${quoted(method)}` })
          )
      }
    }
  })
