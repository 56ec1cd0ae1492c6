/**
 * The Codex-compatible `auth.json` document with its secrets Redacted, the
 * claims read from its tokens and the snapshot hash that keys every piece of
 * refresh state. The codec, the validation and the rewrites are the core's
 * (`@effect-auth-manager/core/authDocument`); this module holds its secrets
 * Redacted and speaks `Option`, `Either` and `Duration`. Pure: no services,
 * no I/O.
 */
import * as Core from "@effect-auth-manager/core/authDocument"
import { Duration, Either, Option, Redacted } from "effect"
import { AuthDocumentError } from "../errors/Errors.js"

export { RawJson } from "@effect-auth-manager/core/authDocument"

type Secret = Redacted.Redacted<string>

/** The `tokens` object of `auth.json`. */
export type Tokens = Core.Tokens<Secret>

/**
 * The whole `auth.json`, its secrets Redacted. Fields it does not name are
 * kept, as `RawJson` values holding exactly the text they were written with.
 */
export type AuthDocument = Core.AuthDocument<Secret>

export type AuthMethod = Core.AuthMethod

/** Who the id_token says the user is. Claims are read without verifying the signature. */
export type IdTokenClaims = Core.IdTokenClaims

/**
 * One version of the credentials, with everything a poll needs worked out
 * once: a poll of an unchanged snapshot decodes nothing.
 */
export interface AuthSnapshot {
  readonly document: Option.Option<AuthDocument>
  /** SHA-256 of the canonical JSON of the whole document; "absent" when there is none. */
  readonly hash: string
  readonly method: AuthMethod | null
  readonly claims: IdTokenClaims
  /** The access token's `exp`, in epoch milliseconds, when it is a JWT that has one. */
  readonly accessTokenExpiresAt: Option.Option<number>
  /** `last_refresh`, in epoch milliseconds, when present and valid. */
  readonly lastRefreshAt: Option.Option<number>
}

/** The snapshot of a store that holds no credential file. */
export const absent: AuthSnapshot = {
  document: Option.none(),
  hash: "absent",
  method: null,
  claims: Core.noClaims,
  accessTokenExpiresAt: Option.none(),
  lastRefreshAt: Option.none()
}

/** Explicit `auth_mode` wins; else an API key; else tokens; else logged out. */
export const resolveMethod: (doc: AuthDocument) => AuthMethod | null = Core.resolveMethod

const reveal = (doc: AuthDocument): Core.AuthDocument => Core.mapSecrets(doc, Redacted.value)

const snapshotOf = (doc: AuthDocument, plain: Core.AuthDocument): AuthSnapshot => {
  const summary = Core.summarize(plain)
  return {
    document: Option.some(doc),
    hash: summary.hash,
    method: summary.method,
    claims: summary.claims,
    accessTokenExpiresAt: Option.fromNullable(summary.accessTokenExpiresAt),
    lastRefreshAt: Option.fromNullable(summary.lastRefreshAt)
  }
}

/**
 * The text `auth.json` holds for a document: the fields in the document's
 * order, unknown ones exactly as they were read. `indent` 0 is compact.
 */
export const toText = (doc: AuthDocument, indent = 2): string => Core.toText(reveal(doc), indent)

/**
 * The JSON value of a document (unknown fields as JavaScript reads them:
 * digits beyond 2^53 are lost). For display and tests; `toText` is what is
 * written.
 */
export const toJson = (doc: AuthDocument): Record<string, unknown> => JSON.parse(toText(doc, 0))

const snapshots = new WeakMap<AuthDocument, AuthSnapshot>()

/** Builds the snapshot of a document. */
export const snapshot = (doc: AuthDocument): AuthSnapshot => {
  // A document is never changed once made: its snapshot (a hash of its canonical text) is worked
  // out once, however many times it is asked for (a refresh writes it, then adopts what it wrote).
  let made = snapshots.get(doc)
  if (made === undefined) snapshots.set(doc, made = snapshotOf(doc, reveal(doc)))
  return made
}

const fromCore = (decoded: Core.Decoded): Either.Either<Core.AuthDocument, AuthDocumentError> =>
  decoded._tag === "Document"
    ? Either.right(decoded.document)
    : Either.left(new AuthDocumentError(decoded.error))

/**
 * Parses the text of a credential file. The error's detail is a sentence that
 * never quotes the file's content, since that content holds secrets.
 */
export const parse = (text: string): Either.Either<AuthSnapshot, AuthDocumentError> =>
  Either.map(fromCore(Core.decodeText(text)), (plain) => snapshotOf(Core.mapSecrets(plain, Redacted.make), plain))

/** Reads the text of a credential file as a document, unknown fields kept exactly. */
export const decodeText = (text: string): Either.Either<AuthDocument, AuthDocumentError> =>
  Either.map(fromCore(Core.decodeText(text)), (plain) => Core.mapSecrets(plain, Redacted.make))

/**
 * Decodes an already-parsed JSON value as a document (its numbers are what
 * JavaScript made of them; `decodeText` keeps them exactly).
 */
export const decode = (json: unknown): Either.Either<AuthDocument, AuthDocumentError> =>
  Either.map(fromCore(Core.decode(json)), (plain) => Core.mapSecrets(plain, Redacted.make))

/** Reads a JWT's payload without verifying its signature. */
export const jwtPayload = (jwt: string): Option.Option<Record<string, unknown>> =>
  Option.fromNullable(Core.jwtPayload(jwt))

/** The tokens a successful refresh returned: only those present replace the old ones. */
export interface RefreshedTokens {
  readonly accessToken?: Secret
  readonly idToken?: Secret
  readonly refreshToken?: Secret
  /** How long the new access token lives (`expires_in`). */
  readonly expiresIn?: Duration.Duration
}

/** A refresh's tokens in the core's terms (milliseconds), the secrets still Redacted. */
export const refreshedToCore = ({ expiresIn, ...tokens }: RefreshedTokens): Core.RefreshedTokens<Secret> =>
  expiresIn === undefined ? tokens : { ...tokens, expiresInMillis: Duration.toMillis(expiresIn) }

/** A refresh's tokens from the core's terms. */
export const refreshedFromCore = ({ expiresInMillis, ...tokens }: Core.RefreshedTokens<Secret>): RefreshedTokens =>
  expiresInMillis === undefined ? tokens : { ...tokens, expiresIn: Duration.millis(expiresInMillis) }

/** The document after a successful refresh at `now`. Unknown fields are kept. */
export const applyRefresh = (doc: AuthDocument, refreshed: RefreshedTokens, now: Date): AuthDocument =>
  Core.applyRefresh(doc, refreshedToCore(refreshed), now)

/** The document after signing in with an API key. Unknown top-level fields are kept. */
export const withApiKey = (doc: Option.Option<AuthDocument>, apiKey: Secret): AuthDocument =>
  Core.withApiKey(Option.getOrUndefined(doc), apiKey)

/**
 * What is wrong with an id_token that the Codex CLI could not read (it must
 * be a JWT whose payload is a JSON object), or none.
 */
export const idTokenProblem = (idToken: string): Option.Option<string> =>
  Option.fromNullable(Core.idTokenProblem(idToken))

/**
 * The document after signing in with ChatGPT tokens at `now`. Unknown
 * top-level fields are kept. A missing `account_id` is taken from the
 * id_token's `chatgpt_account_id` claim, as the Codex CLI does.
 */
export const withTokens = (
  doc: Option.Option<AuthDocument>,
  tokens: Tokens,
  now: Date,
  expiresIn?: Duration.Duration
): AuthDocument =>
  Core.withTokens(Option.getOrUndefined(doc), tokens, now, {
    reveal: Redacted.value,
    expiresInMillis: expiresIn === undefined ? undefined : Duration.toMillis(expiresIn)
  })

/**
 * A refresh whose tokens are not saved yet: what it received, the refresh token it replaced (dead
 * at the provider once it rotated), and when it was answered, in epoch milliseconds. Its tokens
 * belong on credentials that still hold `replaced`, and on nothing else.
 */
export interface PendingRefresh {
  readonly tokens: RefreshedTokens
  readonly replaced: Secret
  readonly at: number
}
