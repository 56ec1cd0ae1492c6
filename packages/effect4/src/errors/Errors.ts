/**
 * Every typed error of the library. None of them carries a token: they hold
 * reasons, HTTP statuses and file paths only, so they are safe to log, to
 * send over the wire and to show to a person.
 */
import { permanentReasons } from "@effect-auth-manager/core/classify"
import { Duration, Schema } from "effect"

/** Why a refresh token can never work again. */
export const PermanentReason = Schema.Literals(permanentReasons)
export type PermanentReason = typeof PermanentReason.Type

const permanentMessages: Record<PermanentReason, string> = {
  expired: "because your refresh token has expired. Please log out and sign in again.",
  reused: "because your refresh token was already used. Please log out and sign in again.",
  revoked: "because your refresh token was revoked. Please log out and sign in again.",
  invalid_grant: "because the authorization server rejected your refresh token (invalid_grant). " +
    "Please log out and sign in again.",
  invalid_client: "because the authorization server does not accept this client (invalid_client). " +
    "Check the configured client id and client secret, then sign in again.",
  other: "because the authorization server refused the refresh (HTTP 401). Please log out and sign in again."
}

/**
 * The refresh token is dead. Retrying with the same credentials can never
 * succeed: the snapshot is poisoned until the credentials change.
 */
export class PermanentRefreshError extends Schema.TaggedError<PermanentRefreshError>()(
  "PermanentRefreshError",
  {
    reason: PermanentReason,
    status: Schema.optional(Schema.Number)
  }
) {
  override get message(): string {
    return `Your access token could not be refreshed ${permanentMessages[this.reason]}`
  }
}

/** What kind of passing trouble stopped a refresh. */
export const TransientKind = Schema.Literals([
  "connection",
  "timeout",
  "status",
  "body",
  "cooldown",
  "storage",
  "client"
])
export type TransientKind = typeof TransientKind.Type

/**
 * The refresh may work later: the network, the endpoint or the response was
 * at fault. The manager backs off before trying again and keeps serving the
 * access token it has.
 */
export class TransientRefreshError extends Schema.TaggedError<TransientRefreshError>()(
  "TransientRefreshError",
  {
    kind: TransientKind,
    detail: Schema.String,
    status: Schema.optional(Schema.Number),
    retryAfter: Schema.optional(Schema.DurationFromMillis)
  }
) {
  override get message(): string {
    const wait = this.retryAfter === undefined ? "" : ` (the server asked to wait ${Duration.format(this.retryAfter)})`
    // Tokens a host app supplied are refreshed by that app only (kind "client").
    return this.kind === "client"
      ? `Your access token could not be refreshed: ${this.detail}. The app that supplied it must supply new tokens.`
      : `Your access token could not be refreshed right now: ${this.detail}${wait}. ` +
        "The current token is still used, and the refresh will be retried after a backoff."
  }
}

/**
 * A text is not a credential document (an `auth.json`). The detail never
 * quotes the text, since the text holds secrets.
 */
export class AuthDocumentError extends Schema.TaggedError<AuthDocumentError>()(
  "AuthDocumentError",
  {
    reason: Schema.Literals(["not-json", "not-an-object", "unexpected-content"]),
    detail: Schema.String
  }
) {
  override get message(): string {
    return this.detail
  }
}

/**
 * The stored credentials could not be read, parsed or written. `path` is
 * where they are: a file, or a database's table and key.
 */
export class AuthStoreError extends Schema.TaggedError<AuthStoreError>()(
  "AuthStoreError",
  {
    path: Schema.String,
    operation: Schema.Literals(["read", "write", "remove", "lock"]),
    problem: Schema.String,
    /** What to do about it, when the backend knows better than the default advice (which is for files). */
    advice: Schema.optional(Schema.String)
  }
) {
  override get message(): string {
    // The keyring store's locations are `keyring:<service>/<account>` (its lock is still a file).
    if (this.path.startsWith("keyring:") && this.operation !== "lock") {
      return `Could not ${this.operation} the credentials in the OS keyring (${this.path}): ${this.problem}.`
    }
    if (this.path.startsWith("postgres:") && this.advice === undefined) {
      const advice = this.operation === "lock"
        ? "Another replica is busy with the credentials; the next poll tries again."
        : "Check the database (its connection, and this role's rights on the table); the next poll tries again."
      return `Could not ${this.operation} the credentials in PostgreSQL (${this.path}): ${this.problem}. ${advice}`
    }
    const advice = this.advice ?? (this.operation === "read"
      ? "The file was left untouched: repair it, or move it away and sign in again."
      : this.operation === "lock"
      ? "Another process is busy with the credentials; the next poll tries again."
      : "Check that the folder exists and that this user may write to it.")
    return `Could not ${this.operation} the credentials in ${this.path}: ${this.problem}. ${advice}`
  }
}

/**
 * The health shared between processes (poisoned, backing off) could not be
 * read or written. Never fatal: the health is an optimisation, and a record
 * that cannot be read is ignored.
 */
export class SharedHealthError extends Schema.TaggedError<SharedHealthError>()(
  "SharedHealthError",
  {
    location: Schema.String,
    operation: Schema.Literals(["read", "write"]),
    problem: Schema.String
  }
) {
  override get message(): string {
    return `Could not ${this.operation} the shared refresh state at ${this.location}: ${this.problem}`
  }
}

/**
 * There is no token a request could carry: nobody is signed in, or the
 * saved credentials are dead (their refresh token was refused for good).
 */
export class CredentialsUnavailableError extends Schema.TaggedError<CredentialsUnavailableError>()(
  "CredentialsUnavailableError",
  {
    reason: Schema.Literals(["logged_out", "poisoned"]),
    /** Why the refresh token is dead, when `reason` is "poisoned". */
    refreshReason: Schema.optional(PermanentReason)
  }
) {
  override get message(): string {
    return this.reason === "logged_out"
      ? "There are no credentials to authorize the request: nobody is signed in. Sign in first (effect-auth login)."
      : `The saved credentials can no longer be used: the access token could not be refreshed ${
        permanentMessages[this.refreshReason ?? "other"]
      }`
  }
}

/** Every way a refresh can fail. */
export type RefreshError = PermanentRefreshError | TransientRefreshError | AuthStoreError

/** Why a sign-in did not end with credentials. */
export const SignInReason = Schema.Literals([
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
])
export type SignInReason = typeof SignInReason.Type

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

/**
 * A sign-in ended without credentials. `detail` says what happened in words
 * safe to show and log: it never holds a code, a verifier or a token.
 */
export class SignInError extends Schema.TaggedError<SignInError>()(
  "SignInError",
  {
    reason: SignInReason,
    detail: Schema.optional(Schema.String),
    status: Schema.optional(Schema.Number)
  }
) {
  override get message(): string {
    return this.detail === undefined ? signInAdvice[this.reason] : `${signInAdvice[this.reason]} (${this.detail})`
  }
}

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
