/**
 * The words of every error the library reports, from the error's fields:
 * each edition's error classes are thin (Schema or Data tagged errors over
 * the same fields) and say these. None of them holds a token: reasons,
 * HTTP statuses and locations only, and text from outside goes through
 * `scrubText` first.
 */
import type { PermanentReason } from "./classify.js"

export type { PermanentReason } from "./classify.js"
export { permanentReasons } from "./classify.js"

/** What kind of passing trouble stopped a refresh. */
export const transientKinds = ["connection", "timeout", "status", "body", "cooldown", "storage", "client"] as const
export type TransientKind = typeof transientKinds[number]

/** Why a text is not a credential document. */
export const documentReasons = ["not-json", "not-an-object", "unexpected-content"] as const

/** What was being done to the stored credentials. */
export const storeOperations = ["read", "write", "remove", "lock"] as const
export type StoreOperation = typeof storeOperations[number]

/** Why a sign-in did not end with credentials. */
export const signInReasons = [
  "canceled",
  "timeout",
  "denied",
  "expired",
  "exchange_failed",
  "client_refused",
  "unreachable",
  "port_busy",
  "discovery_failed",
  "unsupported",
  "storage"
] as const
export type SignInReason = typeof signInReasons[number]

/** A duration in milliseconds as Effect's `Duration.format` writes it: "1m 30s", "250ms", "0". */
export const formatMillis = (millis: number): string => {
  if (millis === Infinity) return "Infinity"
  const nanos = BigInt(Math.round(millis * 1e6))
  if (nanos <= 0n) return "0"
  const ms = nanos / 1_000_000n
  const sec = ms / 1000n
  const min = sec / 60n
  const hr = min / 60n
  const pieces: Array<string> = []
  const add = (value: bigint, unit: string) => {
    if (value !== 0n) pieces.push(`${value}${unit}`)
  }
  add(hr / 24n, "d")
  add(hr % 24n, "h")
  add(min % 60n, "m")
  add(sec % 60n, "s")
  add(ms % 1000n, "ms")
  add(nanos % 1_000_000n, "ns")
  return pieces.join(" ")
}

const permanentAdvice: Record<PermanentReason, string> = {
  expired: "because your refresh token has expired. Please log out and sign in again.",
  reused: "because your refresh token was already used. Please log out and sign in again.",
  revoked: "because your refresh token was revoked. Please log out and sign in again.",
  invalid_grant: "because the authorization server rejected your refresh token (invalid_grant). " +
    "Please log out and sign in again.",
  invalid_client: "because the authorization server does not accept this client (invalid_client). " +
    "Check the configured client id and client secret, then sign in again.",
  other: "because the authorization server refused the refresh (HTTP 401). Please log out and sign in again."
}

/** A dead refresh token. */
export const permanentMessage = (reason: PermanentReason): string =>
  `Your access token could not be refreshed ${permanentAdvice[reason]}`

/** A refresh that may work later (`retryAfter` in milliseconds). */
export const transientMessage = (
  error: { readonly kind: TransientKind; readonly detail: string; readonly retryAfter?: number | undefined }
): string => {
  const wait = error.retryAfter === undefined
    ? ""
    : ` (the server asked to wait ${formatMillis(error.retryAfter)})`
  // Tokens a host app supplied are refreshed by that app only (kind "client").
  return error.kind === "client"
    ? `Your access token could not be refreshed: ${error.detail}. The app that supplied it must supply new tokens.`
    : `Your access token could not be refreshed right now: ${error.detail}${wait}. ` +
      "The current token is still used, and the refresh will be retried after a backoff."
}

/** The stored credentials could not be read, parsed or written. */
export const authStoreMessage = (
  error: {
    readonly path: string
    readonly operation: StoreOperation
    readonly problem: string
    readonly advice?: string | undefined
  }
): string => {
  const { advice, operation, path, problem } = error
  // The keyring store's locations are `keyring:<service>/<account>` (its lock is still a file).
  if (path.startsWith("keyring:") && operation !== "lock") {
    return `Could not ${operation} the credentials in the OS keyring (${path}): ${problem}.`
  }
  if (path.startsWith("postgres:") && advice === undefined) {
    const what = operation === "lock"
      ? "Another replica is busy with the credentials; the next poll tries again."
      : "Check the database (its connection, and this role's rights on the table); the next poll tries again."
    return `Could not ${operation} the credentials in PostgreSQL (${path}): ${problem}. ${what}`
  }
  const what = advice ?? (operation === "read"
    ? "The file was left untouched: repair it, or move it away and sign in again."
    : operation === "lock"
    ? "Another process is busy with the credentials; the next poll tries again."
    : "Check that the folder exists and that this user may write to it.")
  return `Could not ${operation} the credentials in ${path}: ${problem}. ${what}`
}

/** The health shared between processes could not be read or written. */
export const sharedHealthMessage = (
  error: { readonly location: string; readonly operation: "read" | "write"; readonly problem: string }
): string => `Could not ${error.operation} the shared refresh state at ${error.location}: ${error.problem}`

/** No token a request could carry. */
export const credentialsUnavailableMessage = (
  error: { readonly reason: "logged_out" | "poisoned"; readonly refreshReason?: PermanentReason | undefined }
): string =>
  error.reason === "logged_out"
    ? "There are no credentials to authorize the request: nobody is signed in. Sign in first (effect-auth login)."
    : `The saved credentials can no longer be used: the access token could not be refreshed ${
      permanentAdvice[error.refreshReason ?? "other"]
    }`

const signInAdvice: Record<SignInReason, string> = {
  canceled: "The sign-in was canceled.",
  timeout: "The sign-in was not completed in time. Start it again and finish it in the browser.",
  denied: "The sign-in was refused at the provider. Start it again if that was a mistake.",
  expired: "The device code expired before it was entered. Start the sign-in again for a new code.",
  exchange_failed: "The provider did not accept the sign-in. Start it again.",
  client_refused: "The provider refused this program's client: the client id or client secret is wrong, " +
    "or the client may not use this kind of sign-in. Correct them to match the client registered at the provider, " +
    "then sign in again.",
  unreachable: "The provider could not be reached. Check the network and the issuer URL, then try again.",
  port_busy: "No local port was free for the browser to come back to. Close the other sign-in, or choose another port.",
  discovery_failed: "The provider's configuration could not be read. Check the issuer URL.",
  unsupported: "The provider does not offer this kind of sign-in.",
  storage: "Signed in, but the credentials could not be saved."
}

/** A sign-in that ended without credentials; `detail` is words safe to show. */
export const signInMessage = (error: { readonly reason: SignInReason; readonly detail?: string | undefined }): string =>
  error.detail === undefined ? signInAdvice[error.reason] : `${signInAdvice[error.reason]} (${error.detail})`

const jwtLike = /eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*/g

/**
 * Text that came from outside (an error of the platform, a server's words),
 * made safe to show: the given secret values and anything shaped like a JWT
 * replaced by "[redacted]", on one line, at most `maxLength` characters.
 */
export const scrubText = (text: string, secrets: ReadonlyArray<string> = [], maxLength = 500): string => {
  let safe = text.replace(jwtLike, "[redacted]")
  for (const secret of secrets) if (secret.length >= 8) safe = safe.split(secret).join("[redacted]")
  safe = safe.replace(/\s*\n\s*/g, " ")
  return safe.length > maxLength ? `${safe.slice(0, maxLength)}…` : safe
}
