/**
 * The redirects the authorized client follows itself, so that its
 * credentials stay on the origin they were sent to: fetch would follow a
 * redirect with `ChatGPT-Account-Id` to any host, and `HttpClient.followRedirects`
 * keeps that header too. Followed as fetch does (RFC 9110 §15.4): 301, 302, 303,
 * 307 and 308 with a `Location`; 303, and 301 or 302 after a POST, go on as
 * a GET without a body; at most `maxRedirects`.
 */
import { Effect, Option, Result } from "effect"
import { FetchHttpClient, HttpBody, HttpClientRequest, type HttpClientResponse, Url } from "effect/http"

/** As fetch: more redirects than this is an error. */
export const maxRedirects = 20

const redirectStatuses = new Set([301, 302, 303, 307, 308])

/** Headers that carry a credential, dropped once a redirect leaves the request's origin (as fetch, curl and requests do). */
export const credentialHeaders = ["authorization", "proxy-authorization", "cookie", "chatgpt-account-id"] as const

/** The full URL of `request` (its parameters and fragment included). */
export const urlOf = (request: HttpClientRequest.HttpClientRequest): Option.Option<URL> =>
  Result.getSuccess(Url.make(request.url, request.urlParams, Option.getOrUndefined(request.hash)))

/** Whether two URLs have the same origin (scheme, host and port). */
export const sameOrigin = (a: URL, b: URL): boolean => a.origin === b.origin

const removeHeaders = (request: HttpClientRequest.HttpClientRequest, names: ReadonlyArray<string>) =>
  names.reduce(HttpClientRequest.removeHeader, request)

/** Where `response` sends `request` next; none when it is not a redirect that can be followed. */
export const nextHop = (
  request: HttpClientRequest.HttpClientRequest,
  response: HttpClientResponse.HttpClientResponse
): Option.Option<HttpClientRequest.HttpClientRequest> => {
  const location = response.headers["location"]
  if (!redirectStatuses.has(response.status) || location === undefined) return Option.none()
  const base = urlOf(request)
  if (Option.isNone(base) || !URL.canParse(location, base.value.href)) return Option.none()
  const target = new URL(location, base.value)
  if (target.protocol !== "http:" && target.protocol !== "https:") return Option.none()
  const asGet = response.status === 303
    ? request.method !== "HEAD"
    : (response.status === 301 || response.status === 302) && request.method === "POST"
  // A streamed body cannot be sent twice: its redirect is the caller's.
  if (!asGet && request.body._tag === "Stream") return Option.none()
  const moved = HttpClientRequest.setUrl(request, target)
  if (!asGet) return Option.some(moved)
  return Option.some(
    removeHeaders(
      moved.pipe(HttpClientRequest.setMethod("GET"), HttpClientRequest.setBody(HttpBody.empty)),
      ["content-type", "content-length"]
    )
  )
}

/** `request` without any header that carries a credential. */
export const withoutCredentialHeaders = (request: HttpClientRequest.HttpClientRequest) =>
  removeHeaders(request, credentialHeaders)

/**
 * Runs `effect` (a request through the inner client) so that fetch returns a redirect instead of
 * following it, unless the caller set fetch's redirect mode themselves; tells whether the redirects
 * are then the authorized client's to follow.
 */
export const withoutFetchRedirects = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<readonly [A, boolean], E, R> =>
  Effect.flatMap(
    Effect.serviceOption(FetchHttpClient.RequestInit),
    (init): Effect.Effect<readonly [A, boolean], E, R> => {
      const chosen = Option.flatMap(init, (options) => Option.fromNullishOr(options.redirect))
      if (Option.exists(chosen, (mode) => mode !== "follow")) {
        return Effect.map(effect, (a): readonly [A, boolean] => [a, false])
      }
      const options = Option.getOrElse(init, (): globalThis.RequestInit => ({}))
      return Effect.map(
        Effect.provideService(effect, FetchHttpClient.RequestInit, { ...options, redirect: "manual" }),
        (a): readonly [A, boolean] => [a, true]
      )
    }
  )
