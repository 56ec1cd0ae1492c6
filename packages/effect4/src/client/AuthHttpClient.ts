/**
 * An `HttpClient` that carries the user's credentials: `Authorization: Bearer
 * <token>` (and, for ChatGPT credentials, `ChatGPT-Account-Id`) on every
 * request, and one recovery when the API answers 401.
 *
 * @example
 * const program = Effect.gen(function*() {
 *   const client = yield* AuthHttpClient
 *   const response = yield* client.get("https://api.example.com/me")
 * })
 */
import { Context, Effect, Function, Inspectable, Layer, Option } from "effect"
import { Headers, HttpClient, HttpClientError, HttpClientRequest, type HttpClientResponse } from "effect/http"
import { CredentialsUnavailableError } from "../errors/Errors.js"
import { AuthManager, type AuthManagerShape } from "../manager/AuthManager.js"
import type { Credentials } from "../manager/AuthState.js"
import * as Redirects from "./internal/redirects.js"

/** The header the Codex backend reads the ChatGPT account from. */
export const accountIdHeader = "ChatGPT-Account-Id"

/** An authorized client: its requests fail with `CredentialsUnavailableError` when there is no usable token. */
export interface AuthorizedClient
  extends HttpClient.HttpClient.With<HttpClientError.HttpClientError | CredentialsUnavailableError>
{}

/** Sets the credentials' headers on `request`. */
export const setCredentials = (
  request: HttpClientRequest.HttpClientRequest,
  credentials: Credentials
): HttpClientRequest.HttpClientRequest => {
  const withBearer = HttpClientRequest.bearerToken(request, credentials.token)
  return credentials.accountId === null
    ? withBearer
    : HttpClientRequest.setHeader(withBearer, accountIdHeader, credentials.accountId)
}

// The HTTP spans and logs redact the header names in `Headers.CurrentRedactedNames`, which holds
// "authorization" unless a program replaced the list: ours keeps it whatever the list.
const redactsAuthorization = (names: ReadonlyArray<string | RegExp>) =>
  names.some((name) => typeof name === "string" ? name.toLowerCase() === "authorization" : name.test("authorization"))
const keepAuthorizationRedacted = Effect.updateService(
  Headers.CurrentRedactedNames,
  (names) => redactsAuthorization(names) ? names : [...names, "authorization"]
)

// What the caller sees of the exchange is its own request: the copy that carries the credentials
// stays inside. A response, and an HttpClientError, hold their request, and a program that
// inspects it (or replaced the redacted names) would see the token.
const asSent = (
  response: HttpClientResponse.HttpClientResponse,
  request: HttpClientRequest.HttpClientRequest
): HttpClientResponse.HttpClientResponse => {
  const toJSON = () => ({ ...(response.toJSON() as object), request: request.toJSON() })
  return Object.create(response, {
    request: { value: request, enumerable: true },
    toJSON: { value: toJSON },
    [Inspectable.NodeInspectSymbol]: { value: toJSON }
  })
}

const reasonFor = (
  reason: HttpClientError.HttpClientErrorReason,
  request: HttpClientRequest.HttpClientRequest
): HttpClientError.HttpClientErrorReason => {
  const details = {
    request,
    ...(reason.cause === undefined ? {} : { cause: reason.cause }),
    ...(reason.description === undefined ? {} : { description: reason.description })
  }
  switch (reason._tag) {
    case "TransportError":
      return new HttpClientError.TransportError(details)
    case "EncodeError":
      return new HttpClientError.EncodeError(details)
    case "InvalidUrlError":
      return new HttpClientError.InvalidUrlError(details)
    case "StatusCodeError":
      return new HttpClientError.StatusCodeError({ ...details, response: asSent(reason.response, request) })
    case "DecodeError":
      return new HttpClientError.DecodeError({ ...details, response: asSent(reason.response, request) })
    case "EmptyBodyError":
      return new HttpClientError.EmptyBodyError({ ...details, response: asSent(reason.response, request) })
  }
}

const withoutCredentials = (request: HttpClientRequest.HttpClientRequest) => <E>(error: E): E =>
  HttpClientError.isHttpClientError(error)
    ? new HttpClientError.HttpClientError({ reason: reasonFor(error.reason, request) }) as E
    : error

/**
 * Authorizes every request of `self` with `auth`'s credentials. On a 401 the refused token is
 * reported (`AuthManager.reportUnauthorized`) and, when there is another token to try, the
 * request is sent once more; a second 401 is the caller's. A request whose body is a stream
 * cannot be sent twice: its 401 is returned as it is.
 *
 * @example
 * const client = (yield* HttpClient.HttpClient).pipe(AuthHttpClient.authorize(yield* AuthManager))
 */
export const authorize: {
  (
    auth: AuthManagerShape
  ): <E, R>(self: HttpClient.HttpClient.With<E, R>) => HttpClient.HttpClient.With<E | CredentialsUnavailableError, R>
  <E, R>(
    self: HttpClient.HttpClient.With<E, R>,
    auth: AuthManagerShape
  ): HttpClient.HttpClient.With<E | CredentialsUnavailableError, R>
} = Function.dual(2, <E, R>(self: HttpClient.HttpClient.With<E, R>, auth: AuthManagerShape) => {
  const send = (request: HttpClientRequest.HttpClientRequest, credentials: Credentials) =>
    keepAuthorizationRedacted(Redirects.withoutFetchRedirects(self.execute(setCredentials(request, credentials)))).pipe(
      Effect.mapBoth({
        onFailure: withoutCredentials(request),
        onSuccess: ([response, follow]) => [asSent(response, request), follow] as const
      })
    )
  const sendPlain = (request: HttpClientRequest.HttpClientRequest) =>
    Redirects.withoutFetchRedirects(self.execute(Redirects.withoutCredentialHeaders(request)))

  // The credentials go with the request and with the redirects that stay on its origin; once a
  // redirect leaves it, the rest of the way goes without them, as fetch, curl and requests do.
  const sendFollowing = Effect.fnUntraced(
    function*(request: HttpClientRequest.HttpClientRequest, credentials: Credentials) {
      const origin = Redirects.urlOf(request)
      let [response, follow] = yield* send(request, credentials)
      let hop = request
      let withCredentials = true
      for (let redirects = 0; follow; redirects++) {
        const next = Redirects.nextHop(hop, response)
        if (Option.isNone(next)) break
        if (redirects === Redirects.maxRedirects) {
          return yield* new HttpClientError.HttpClientError({
            reason: new HttpClientError.TransportError({
              request,
              description: `more than ${Redirects.maxRedirects} redirects`
            })
          })
        }
        hop = next.value
        withCredentials = withCredentials && Option.isSome(origin) &&
          Option.exists(Redirects.urlOf(hop), (url) => Redirects.sameOrigin(url, origin.value))
        ;[response, follow] = withCredentials ? yield* send(hop, credentials) : yield* sendPlain(hop)
      }
      return { response, withCredentials }
    }
  )

  const execute = Effect.fnUntraced(function*(request: HttpClientRequest.HttpClientRequest) {
    const first = yield* auth.credentials
    const { response, withCredentials } = yield* sendFollowing(request, first)
    // A 401 from where the credentials were not sent says nothing of them.
    if (response.status !== 401 || !withCredentials || request.body._tag === "Stream") return response
    const recovery = yield* auth.reportUnauthorized(first.token).pipe(
      Effect.catchTags({
        PermanentRefreshError: (error) =>
          Effect.fail(new CredentialsUnavailableError({ reason: "poisoned", refreshReason: error.reason })),
        // Already logged by the refresh; the caller gets the API's answer.
        TransientRefreshError: () => Effect.succeed("unchanged" as const),
        AuthStoreError: (error) => Effect.as(Effect.logWarning(error.message), "unchanged" as const)
      })
    )
    if (recovery === "unchanged") return response
    return (yield* sendFollowing(request, yield* auth.credentials)).response
  })

  return HttpClient.makeWith((request) => Effect.flatMap(request, execute), Effect.succeed)
})

/** The `HttpClient` in context, authorized by the `AuthManager` in context. */
export const make: Effect.Effect<AuthorizedClient, never, HttpClient.HttpClient | AuthManager> = Effect.gen(
  function*() {
    return authorize(yield* HttpClient.HttpClient, yield* AuthManager)
  }
)

// A missing credential, for code that only knows HttpClientError: the typed error is its cause.
const asTransportError = (request: HttpClientRequest.HttpClientRequest) => (error: CredentialsUnavailableError) =>
  new HttpClientError.HttpClientError({
    reason: new HttpClientError.TransportError({ request, description: error.message, cause: error })
  })

/**
 * Replaces the `HttpClient` in context by the authorized one, for code that takes a plain
 * `HttpClient` (an `HttpApiClient`, a generated client). A `CredentialsUnavailableError` then
 * arrives as the `cause` of a `TransportError`. Do not provide it to the `TokenRefresher`.
 */
export const layerHttpClient: Layer.Layer<HttpClient.HttpClient, never, HttpClient.HttpClient | AuthManager> = Layer
  .effect(
    HttpClient.HttpClient,
    Effect.map(make, (client): HttpClient.HttpClient =>
      HttpClient.makeWith(
        (request: Effect.Effect<HttpClientRequest.HttpClientRequest>) =>
          Effect.flatMap(request, (request) =>
            Effect.catchTag(client.execute(request), "CredentialsUnavailableError", (error) =>
              Effect.fail(asTransportError(request)(error)))),
        Effect.succeed
      ))
  )

/**
 * The authorized client built over the `HttpClient` and `AuthManager` of its layer.
 *
 * @example
 * const api = yield* AuthHttpClient
 * const response = yield* api.get("https://api.example.com/v1/me")
 */
export class AuthHttpClient
  extends Context.Service<AuthHttpClient, AuthorizedClient>()("effect-auth-manager/AuthHttpClient")
{
  /** The header the Codex backend reads the ChatGPT account from. */
  static readonly accountIdHeader = accountIdHeader
  /** See `authorize`: wraps any `HttpClient` with the credentials of `auth`. */
  static readonly authorize = authorize
  /** See `setCredentials`. */
  static readonly setCredentials = setCredentials
  /** The `HttpClient` in context, authorized by the `AuthManager` in context. */
  static readonly make = make
  /** `AuthHttpClient` over the `HttpClient` and `AuthManager` in context. */
  static readonly layer: Layer.Layer<AuthHttpClient, never, HttpClient.HttpClient | AuthManager> = Layer.suspend(
    () => Layer.effect(AuthHttpClient, make)
  )
  /** Replaces the `HttpClient` in context by the authorized one: see `layerHttpClient`. */
  static readonly layerHttpClient = layerHttpClient
}
