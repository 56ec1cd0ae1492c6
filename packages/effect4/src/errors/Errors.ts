/**
 * Every typed error of the library. None of them carries a token: they hold
 * reasons, HTTP statuses and file paths only, so they are safe to log, to
 * send over the wire and to show to a person.
 */
import * as Messages from "@effect-auth-manager/core/messages"
import { Duration, Schema } from "effect"

/** Why a refresh token can never work again. */
export const PermanentReason = Schema.Literals(Messages.permanentReasons)
export type PermanentReason = typeof PermanentReason.Type

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
    return Messages.permanentMessage(this.reason)
  }
}

/** What kind of passing trouble stopped a refresh. */
export const TransientKind = Schema.Literals(Messages.transientKinds)
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
    return Messages.transientMessage({
      kind: this.kind,
      detail: this.detail,
      retryAfter: this.retryAfter === undefined ? undefined : Duration.toMillis(this.retryAfter)
    })
  }
}

/**
 * A text is not a credential document (an `auth.json`). The detail never
 * quotes the text, since the text holds secrets.
 */
export class AuthDocumentError extends Schema.TaggedError<AuthDocumentError>()(
  "AuthDocumentError",
  {
    reason: Schema.Literals(Messages.documentReasons),
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
    operation: Schema.Literals(Messages.storeOperations),
    problem: Schema.String,
    /** What to do about it, when the backend knows better than the default advice (which is for files). */
    advice: Schema.optional(Schema.String)
  }
) {
  override get message(): string {
    return Messages.authStoreMessage(this)
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
    return Messages.sharedHealthMessage(this)
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
    return Messages.credentialsUnavailableMessage(this)
  }
}

/** Every way a refresh can fail. */
export type RefreshError = PermanentRefreshError | TransientRefreshError | AuthStoreError

/** Why a sign-in did not end with credentials. */
export const SignInReason = Schema.Literals(Messages.signInReasons)
export type SignInReason = typeof SignInReason.Type

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
    return Messages.signInMessage(this)
  }
}

/**
 * Text that came from outside (an error of the platform, a server's words),
 * made safe to show: the given secret values and anything shaped like a JWT
 * replaced by "[redacted]", on one line, at most `maxLength` characters.
 */
export const scrubText: (text: string, secrets?: ReadonlyArray<string>, maxLength?: number) => string =
  Messages.scrubText
