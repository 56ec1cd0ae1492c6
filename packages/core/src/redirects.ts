/**
 * The redirects the authorized client follows itself, so that its
 * credentials stay on the origin they were sent to. Followed as fetch does
 * (RFC 9110 §15.4): 301, 302, 303, 307 and 308 with a `Location`; 303, and
 * 301 or 302 after a POST, go on as a GET without a body; at most
 * `maxRedirects`. Each edition moves its own request.
 */

/** As fetch: more redirects than this is an error. */
export const maxRedirects = 20

const redirectStatuses: ReadonlySet<number> = new Set([301, 302, 303, 307, 308])

/** Headers that carry a credential, dropped once a redirect leaves the request's origin (as fetch, curl and requests do). */
export const credentialHeaders = ["authorization", "proxy-authorization", "cookie", "chatgpt-account-id"] as const

/** Headers of a body, dropped when a redirect goes on as a GET. */
export const bodyHeaders = ["content-type", "content-length"] as const

/** Whether two URLs have the same origin (scheme, host and port). */
export const sameOrigin = (a: URL, b: URL): boolean => a.origin === b.origin

/**
 * Where an answer with `status` and `location` sends a `method` request to `from` next, and
 * whether it goes on as a GET without a body; undefined when it is not a redirect that can be
 * followed (a streamed body cannot be sent twice: its redirect is the caller's).
 */
export const redirectTarget = (
  request: { readonly method: string; readonly url: URL; readonly streamedBody: boolean },
  status: number,
  location: string | undefined
): { readonly url: URL; readonly asGet: boolean } | undefined => {
  if (!redirectStatuses.has(status) || location === undefined) return undefined
  if (!URL.canParse(location, request.url.href)) return undefined
  const url = new URL(location, request.url)
  if (url.protocol !== "http:" && url.protocol !== "https:") return undefined
  const asGet = status === 303
    ? request.method !== "HEAD"
    : (status === 301 || status === 302) && request.method === "POST"
  if (!asGet && request.streamedBody) return undefined
  return { url, asGet }
}
