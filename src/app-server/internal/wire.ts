/**
 * What the app server's protocol core and its account requests
 * (`appServerAccount.ts`, loaded once the services are built) both use:
 * error codes, failures, parameter schemas and the plan-type mapping (the
 * protocol's data are the core's, `@effect-auth-manager/core/codex`).
 */
import * as Codex from "@effect-auth-manager/core/codex"
import { Data, Effect, Either, Schema } from "effect"
import { describeIssues } from "../../util/describeIssues.js"

/** JSON-RPC 2.0 error codes. */
export const ErrorCode = Codex.rpcErrorCode

export class RpcFailure extends Data.TaggedError("RpcFailure")<{ readonly code: number; readonly message: string }> {}

export const { planTypeOf, quoted } = Codex

export const OptionalFlag = Schema.optional(Schema.NullOr(Schema.Boolean))
export const InitializeParams = Schema.Struct({
  clientInfo: Schema.optional(Schema.Struct({ name: Schema.String, version: Schema.String }))
})
export const GetAuthStatusParams = Schema.Struct({ includeToken: OptionalFlag, refreshToken: OptionalFlag })
export const GetAccountParams = Schema.Struct({ refreshToken: OptionalFlag })
export const LoginParams = Schema.Union(
  Schema.Struct({ type: Schema.Literal("apiKey"), apiKey: Schema.String }),
  Schema.Struct({
    type: Schema.Literal("chatgptAuthTokens"),
    accessToken: Schema.String,
    chatgptAccountId: Schema.String,
    chatgptPlanType: Schema.optional(Schema.NullOr(Schema.String))
  }),
  Schema.Struct({ type: Schema.Literal("chatgpt", "chatgptDeviceCode") })
)

export const decodeParams = <A, I>(schema: Schema.Schema<A, I>, params: unknown) =>
  Either.match(Schema.decodeUnknownEither(schema)(params ?? {}), {
    onLeft: (error) =>
      Effect.fail(
        new RpcFailure({ code: ErrorCode.invalidParams, message: `Invalid params: ${describeIssues(error)}` })
      ),
    onRight: Effect.succeed
  })

/** The client's answer to `account/chatgptAuthTokens/refresh`. */
export const ChatgptAuthTokensRefreshResponse = Schema.Struct({
  accessToken: Schema.String,
  chatgptAccountId: Schema.String,
  chatgptPlanType: Schema.optional(Schema.NullOr(Schema.String))
})

/**
 * A request this server sent the client got no answer it can use: the client answered with an
 * error, or it went away first. `message` says which, in words safe to log.
 */
export class ClientRequestFailure extends Data.TaggedError("ClientRequestFailure")<{
  readonly reason: "error" | "gone"
  readonly message: string
}> {}

/** Sends a request to the client and waits for its answer (the caller bounds the wait). */
export type ClientRequest = (method: string, params: object) => Effect.Effect<unknown, ClientRequestFailure>

/** What a state-changing request announces once it is answered. */
export type After = Effect.Effect<void>
