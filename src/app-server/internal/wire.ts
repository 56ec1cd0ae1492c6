/**
 * What the app server's protocol core and its account requests
 * (`appServerAccount.ts`, loaded once the services are built) both use:
 * error codes, failures, parameter schemas and the plan-type mapping.
 */
import { Data, Effect, Either, Schema } from "effect"
import { describeIssues } from "../../util/describeIssues.js"

/** JSON-RPC 2.0 error codes. */
export const ErrorCode = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603
} as const

export class RpcFailure extends Data.TaggedError("RpcFailure")<{ readonly code: number; readonly message: string }> {}

/** The plan types the Codex protocol knows; anything else is reported as "unknown". */
const planTypes = new Set([
  "free",
  "go",
  "plus",
  "pro",
  "prolite",
  "promax",
  "team",
  "self_serve_business_prolite",
  "self_serve_business_usage_based",
  "business",
  "ent26",
  "enterprise_cbp_automation",
  "enterprise_cbp_usage_based",
  "enterprise",
  "edu",
  "edu_plus",
  "edu_pro",
  "sci",
  "sci_plus",
  "unknown"
])
export const planTypeOf = (plan: string | null): string => (plan !== null && planTypes.has(plan) ? plan : "unknown")

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

export const quoted = (method: string) => JSON.stringify(method.length > 80 ? `${method.slice(0, 80)}…` : method)

/** What a state-changing request announces once it is answered. */
export type After = Effect.Effect<void>
