/**
 * The Codex-compatible `auth.json` document, the claims read from its tokens
 * and the snapshot hash that keys every piece of refresh state. Pure: no
 * services, no I/O.
 */
import { sha256Hex } from "@effect-auth-manager/core/canonicalJson"
import {
  canonical,
  defineField,
  fieldsOf,
  objectEntries,
  objectText,
  RawJson,
  splitFields,
  valueText
} from "@effect-auth-manager/core/rawJson"
import { Duration, Option, Redacted, Result, Schema } from "effect"
import { Base64Url } from "effect/encoding"
import { AuthDocumentError } from "../errors/Errors.js"
import { describeIssues } from "../util/describeIssues.js"

export { RawJson } from "@effect-auth-manager/core/rawJson"

// Read from the text as a plain string and held as Redacted from then on.
const Secret = Schema.RedactedFromValue(Schema.String)

/** The `tokens` object of `auth.json`. */
export const Tokens = Schema.Struct({
  id_token: Secret,
  access_token: Secret,
  refresh_token: Secret,
  account_id: Schema.optional(Schema.NullOr(Schema.String))
})
export type Tokens = typeof Tokens.Type

/**
 * The whole `auth.json`. Fields this schema does not name are kept, as
 * `RawJson` values holding exactly the text they were written with.
 */
export const AuthDocument = Schema.Struct({
  auth_mode: Schema.optional(Schema.Literals(["chatgpt", "apikey"])),
  OPENAI_API_KEY: Schema.optional(Schema.NullOr(Secret)),
  // Writers differ on an absent value: some leave the key out, some write null.
  tokens: Schema.optional(Schema.NullOr(Tokens)),
  last_refresh: Schema.optional(Schema.NullOr(Schema.String)),
  /**
   * Ours: when the access token expires (RFC 3339), from the `expires_in` of
   * the answer that brought it, so an opaque token goes stale on time. The
   * Codex CLI drops it when it rewrites the file; then `exp` or
   * `last_refresh` decide, as before.
   */
  expires_at: Schema.optional(Schema.NullOr(Schema.String))
})
export type AuthDocument = typeof AuthDocument.Type

const documentKeys = new Set(Object.keys(AuthDocument.fields))
const tokenKeys = new Set(Object.keys(Tokens.fields))
const decodeDocument = Schema.decodeUnknownResult(AuthDocument, { onExcessProperty: "ignore", errors: "all" })
const encodeDocument = Schema.encodeSync(AuthDocument, { onExcessProperty: "ignore" })

const isObjectText = (text: string) => text.trimStart().startsWith("{")

export type AuthMethod = "chatgpt" | "apikey"

/** Who the id_token says the user is. Claims are read without verifying the signature. */
export interface IdTokenClaims {
  readonly email: string | null
  readonly planType: string | null
  readonly userId: string | null
  readonly accountId: string | null
}

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

const noClaims: IdTokenClaims = { email: null, planType: null, userId: null, accountId: null }

/** The snapshot of a store that holds no credential file. */
export const absent: AuthSnapshot = {
  document: Option.none(),
  hash: "absent",
  method: null,
  claims: noClaims,
  accessTokenExpiresAt: Option.none(),
  lastRefreshAt: Option.none()
}

/** Explicit `auth_mode` wins; else an API key; else tokens; else logged out. */
export const resolveMethod = (doc: AuthDocument): AuthMethod | null => {
  const hasKey = doc.OPENAI_API_KEY !== undefined && doc.OPENAI_API_KEY !== null
  const hasTokens = doc.tokens !== undefined && doc.tokens !== null
  const mode = doc.auth_mode ?? (hasKey ? "apikey" : hasTokens ? "chatgpt" : undefined)
  // A mode without the credential it needs cannot authenticate anything.
  if (mode === "apikey") return hasKey ? "apikey" : null
  if (mode === "chatgpt") return hasTokens ? "chatgpt" : null
  return null
}

/**
 * The text `auth.json` holds for a document: the fields in the document's
 * order, unknown ones exactly as they were read. `indent` 0 is compact.
 */
export const toText = (doc: AuthDocument, indent = 2): string => {
  const encoded = encodeDocument(doc) as Record<string, unknown>
  const fields: Array<readonly [string, string]> = []
  // The Codex CLI always writes the key, null when there is none.
  const entries = "OPENAI_API_KEY" in doc ? fieldsOf(doc) : [["OPENAI_API_KEY", null] as const, ...fieldsOf(doc)]
  for (const [key, value] of entries) {
    if (value === undefined) continue
    if (key === "tokens" && value !== null && typeof value === "object") {
      const encodedTokens = encoded.tokens as Record<string, unknown>
      const tokenFields = fieldsOf(value).flatMap(([tokenKey, tokenValue]): ReadonlyArray<readonly [string, string]> =>
        tokenValue === undefined
          ? []
          : [[tokenKey, valueText(tokenKeys.has(tokenKey) ? encodedTokens[tokenKey] : tokenValue, indent, 2)]]
      )
      fields.push([key, objectText(tokenFields, indent, 1)])
    } else {
      fields.push([key, valueText(documentKeys.has(key) ? encoded[key] ?? null : value, indent, 1)])
    }
  }
  return objectText(fields, indent, 0)
}

/**
 * The JSON value of a document (unknown fields as JavaScript reads them:
 * digits beyond 2^53 are lost). For display and tests; `toText` is what is
 * written.
 */
export const toJson = (doc: AuthDocument): Record<string, unknown> => JSON.parse(toText(doc, 0))

/** Builds the snapshot of a document. */
export const snapshot = (doc: AuthDocument): AuthSnapshot => {
  const tokens = doc.tokens
  return {
    document: Option.some(doc),
    hash: sha256Hex(canonical(toText(doc, 0))),
    method: resolveMethod(doc),
    claims: tokens == null ? noClaims : idTokenClaims(tokens),
    accessTokenExpiresAt: tokens == null
      ? Option.none()
      : Option.flatMap(
        jwtPayload(Redacted.value(tokens.access_token)),
        (claims) => typeof claims.exp === "number" ? Option.some(claims.exp * 1000) : Option.none()
      ).pipe(
        Option.orElse(() => storedExpiry(doc))
      ),
    lastRefreshAt: instant(doc.last_refresh)
  }
}

const instant = (text: string | null | undefined): Option.Option<number> =>
  Option.fromNullishOr(text).pipe(Option.map(Date.parse), Option.filter(Number.isFinite))

// `expires_at` describes the token of the refresh that wrote it: one older than `last_refresh`
// was left behind by a writer that kept unknown fields, and says nothing of the current token.
const storedExpiry = (doc: AuthDocument): Option.Option<number> =>
  Option.filter(
    instant(doc.expires_at),
    (at) => Option.match(instant(doc.last_refresh), { onNone: () => true, onSome: (refreshed) => at > refreshed })
  )

const notAnObject = new AuthDocumentError({ reason: "not-an-object", detail: "it is not a JSON object" })

/**
 * Parses the text of a credential file. The error's detail is a sentence that
 * never quotes the file's content, since that content holds secrets.
 */
export const parse = (text: string): Result.Result<AuthSnapshot, AuthDocumentError> =>
  Result.map(decodeText(text), snapshot)

/** Reads the text of a credential file as a document, unknown fields kept exactly. */
export const decodeText = (text: string): Result.Result<AuthDocument, AuthDocumentError> => {
  let json: unknown
  try {
    // Validates the whole text first (V8's parser does not recurse, so any depth is fine).
    json = JSON.parse(text)
  } catch (error) {
    const at = /position (\d+)/.exec(String(error))
    return Result.fail(
      new AuthDocumentError({
        reason: "not-json",
        detail: `it is not valid JSON${at ? ` (syntax error at character ${at[1]})` : ""}`
      })
    )
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) return Result.fail(notAnObject)
  const top = splitFields(text, documentKeys)
  const known: Record<string, unknown> = {}
  let tokenExtras: ReadonlyMap<string, RawJson> = new Map()
  for (const [key, raw] of Object.entries(top.knownFields) as Array<[string, string]>) {
    if (key === "tokens" && isObjectText(raw)) {
      const tokens = splitFields(raw, tokenKeys)
      known.tokens = Object.fromEntries(
        Object.entries(tokens.knownFields as Record<string, string>).map(([k, v]) => [k, JSON.parse(v)])
      )
      tokenExtras = tokens.unknownFields
    } else {
      known[key] = JSON.parse(raw)
    }
  }
  return decodeDocument(known).pipe(
    Result.mapError((error) =>
      new AuthDocumentError({ reason: "unexpected-content", detail: `unexpected content: ${describeIssues(error)}` })
    ),
    Result.map((decoded) => {
      // The file's order: known fields where they were, unknown ones beside them.
      const doc = {} as Record<string, unknown>
      for (const [key] of objectEntries(text)) {
        if (Object.hasOwn(doc, key)) continue
        if (documentKeys.has(key)) {
          const value = (decoded as Record<string, unknown>)[key]
          if (value !== undefined) defineField(doc, key, value)
        } else {
          defineField(doc, key, top.unknownFields.get(key))
        }
      }
      if (decoded.tokens != null) {
        const tokens = { ...decoded.tokens }
        for (const [key, value] of tokenExtras) defineField(tokens, key, value)
        doc.tokens = tokens
      }
      return doc as AuthDocument
    })
  )
}

/**
 * Decodes an already-parsed JSON value as a document (its numbers are what
 * JavaScript made of them; `decodeText` keeps them exactly).
 */
export const decode = (json: unknown): Result.Result<AuthDocument, AuthDocumentError> => {
  if (json === null || typeof json !== "object" || Array.isArray(json)) return Result.fail(notAnObject)
  let text: string
  try {
    text = JSON.stringify(json)
  } catch {
    return Result.fail(new AuthDocumentError({ reason: "not-json", detail: "it cannot be written as JSON" }))
  }
  return decodeText(text)
}

/** Reads a JWT's payload without verifying its signature. */
export const jwtPayload = (jwt: string): Option.Option<Record<string, unknown>> => {
  const payload = jwt.split(".")[1]
  if (payload === undefined) return Option.none()
  return Result.getSuccess(Base64Url.decodeString(payload)).pipe(
    Option.flatMap((text) => {
      try {
        const value: unknown = JSON.parse(text)
        return value !== null && typeof value === "object" && !Array.isArray(value)
          ? Option.some(value as Record<string, unknown>)
          : Option.none()
      } catch {
        return Option.none()
      }
    })
  )
}

const stringField = (record: unknown, key: string): string | null => {
  if (record === null || typeof record !== "object") return null
  const value = (record as Record<string, unknown>)[key]
  return typeof value === "string" ? value : null
}

const idTokenClaims = (tokens: Tokens): IdTokenClaims =>
  Option.match(jwtPayload(Redacted.value(tokens.id_token)), {
    onNone: () => ({ ...noClaims, accountId: tokens.account_id ?? null }),
    onSome: (claims) => {
      const auth = claims["https://api.openai.com/auth"]
      return {
        email: stringField(claims, "email") ?? stringField(claims["https://api.openai.com/profile"], "email"),
        planType: stringField(auth, "chatgpt_plan_type"),
        userId: stringField(auth, "chatgpt_user_id") ?? stringField(auth, "user_id"),
        accountId: stringField(auth, "chatgpt_account_id") ?? tokens.account_id ?? null
      }
    }
  })

/** The tokens a successful refresh returned: only those present replace the old ones. */
export interface RefreshedTokens {
  readonly accessToken?: Redacted.Redacted<string>
  readonly idToken?: Redacted.Redacted<string>
  readonly refreshToken?: Redacted.Redacted<string>
  /** How long the new access token lives (`expires_in`). */
  readonly expiresIn?: Duration.Duration
}

/** The document after a successful refresh at `now`. Unknown fields are kept. */
export const applyRefresh = (doc: AuthDocument, refreshed: RefreshedTokens, now: Date): AuthDocument => {
  if (doc.tokens == null) return doc
  const { expires_at: previousExpiry, ...rest } = doc
  // A new access token brings its own expiry, or none; without one, the old token keeps its own.
  const expiresAt = refreshed.accessToken === undefined
    ? previousExpiry
    : refreshed.expiresIn === undefined
    ? undefined
    : new Date(now.getTime() + Duration.toMillis(refreshed.expiresIn)).toISOString()
  return {
    ...rest,
    tokens: {
      ...doc.tokens,
      access_token: refreshed.accessToken ?? doc.tokens.access_token,
      id_token: refreshed.idToken ?? doc.tokens.id_token,
      refresh_token: refreshed.refreshToken ?? doc.tokens.refresh_token
    },
    last_refresh: now.toISOString(),
    ...(expiresAt == null ? {} : { expires_at: expiresAt })
  }
}

/** The document after signing in with an API key. Unknown top-level fields are kept. */
export const withApiKey = (doc: Option.Option<AuthDocument>, apiKey: Redacted.Redacted<string>): AuthDocument => {
  const { expires_at: _expiresAt, last_refresh: _lastRefresh, tokens: _tokens, ...rest } = Option.getOrElse(
    doc,
    (): AuthDocument => ({})
  )
  return { ...rest, auth_mode: "apikey", OPENAI_API_KEY: apiKey }
}

/**
 * What is wrong with an id_token that the Codex CLI could not read (it must
 * be a JWT whose payload is a JSON object), or none.
 */
export const idTokenProblem = (idToken: string): Option.Option<string> =>
  idToken.split(".").length !== 3
    ? Option.some("the id_token is not a JWT (three dot-separated parts)")
    : Option.isNone(jwtPayload(idToken))
    ? Option.some("the id_token's payload is not base64url-encoded JSON claims")
    : Option.none()

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
): AuthDocument => {
  const accountId = tokens.account_id ?? idTokenClaims(tokens).accountId
  const { expires_at: _expiresAt, ...rest } = Option.getOrElse(doc, (): AuthDocument => ({}))
  return {
    ...rest,
    auth_mode: "chatgpt",
    OPENAI_API_KEY: null,
    tokens: { ...tokens, account_id: accountId },
    last_refresh: now.toISOString(),
    ...(expiresIn === undefined
      ? {}
      : { expires_at: new Date(now.getTime() + Duration.toMillis(expiresIn)).toISOString() })
  }
}

/**
 * A refresh whose tokens are not saved yet: what it received, the refresh token it replaced (dead
 * at the provider once it rotated), and when it was answered, in epoch milliseconds. Its tokens
 * belong on credentials that still hold `replaced`, and on nothing else.
 */
export interface PendingRefresh {
  readonly tokens: RefreshedTokens
  readonly replaced: Redacted.Redacted<string>
  readonly at: number
}
