/**
 * The Codex-compatible `auth.json` document, the claims read from its tokens
 * and the snapshot hash that keys every piece of refresh state. Pure: no
 * services, no I/O.
 */
import { Either, Encoding, Option, Redacted, Schema } from "effect"
import { canonicalJson, sha256Hex } from "./internal/canonicalJson.js"
import { describeIssues } from "./internal/describeIssues.js"

const Secret = Schema.Redacted(Schema.String)

/** The `tokens` object of `auth.json`. */
export const Tokens = Schema.Struct({
  id_token: Secret,
  access_token: Secret,
  refresh_token: Secret,
  account_id: Schema.optional(Schema.NullOr(Schema.String))
})
export type Tokens = typeof Tokens.Type

/** The whole `auth.json`. Fields this schema does not name are kept as they are. */
export const AuthDocument = Schema.Struct({
  auth_mode: Schema.optional(Schema.Literal("chatgpt", "apikey")),
  OPENAI_API_KEY: Schema.optional(Schema.NullOr(Secret)),
  // Writers differ on an absent value: some leave the key out, some write null.
  tokens: Schema.optional(Schema.NullOr(Tokens)),
  last_refresh: Schema.optional(Schema.NullOr(Schema.String))
})
export type AuthDocument = typeof AuthDocument.Type

// "preserve" keeps unknown fields at every depth, on decode and on encode.
const preserve = { onExcessProperty: "preserve", errors: "all" } as const
const decodeDocument = Schema.decodeUnknownEither(AuthDocument, preserve)
const encodeDocument = Schema.encodeSync(AuthDocument, preserve)

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

/** The JSON object that `auth.json` holds for a document (unknown fields included). */
export const toJson = (doc: AuthDocument): Record<string, unknown> => {
  const encoded = encodeDocument(doc) as Record<string, unknown>
  // The Codex CLI always writes the key, null when there is none.
  return { ...encoded, OPENAI_API_KEY: encoded.OPENAI_API_KEY ?? null }
}

/** Builds the snapshot of a document. */
export const snapshot = (doc: AuthDocument): AuthSnapshot => {
  const tokens = doc.tokens
  return {
    document: Option.some(doc),
    hash: sha256Hex(canonicalJson(toJson(doc))),
    method: resolveMethod(doc),
    claims: tokens == null ? noClaims : idTokenClaims(tokens),
    accessTokenExpiresAt: tokens == null
      ? Option.none()
      : Option.flatMap(jwtPayload(Redacted.value(tokens.access_token)), (claims) =>
        typeof claims.exp === "number" ? Option.some(claims.exp * 1000) : Option.none()),
    lastRefreshAt: Option.fromNullable(doc.last_refresh).pipe(
      Option.map(Date.parse),
      Option.filter(Number.isFinite)
    )
  }
}

/**
 * Parses the text of a credential file. The error is a sentence that never
 * quotes the file's content, since that content holds secrets.
 */
export const parse = (text: string): Either.Either<AuthSnapshot, string> => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    const at = /position (\d+)/.exec(String(error))
    return Either.left(`it is not valid JSON${at ? ` (syntax error at character ${at[1]})` : ""}`)
  }
  return decode(json).pipe(Either.map(snapshot))
}

/** Decodes an already-parsed JSON value as a document. */
export const decode = (json: unknown): Either.Either<AuthDocument, string> => {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    return Either.left("it is not a JSON object")
  }
  return decodeDocument(json).pipe(Either.mapLeft((error) => `unexpected content: ${describeIssues(error)}`))
}

/** Reads a JWT's payload without verifying its signature. */
export const jwtPayload = (jwt: string): Option.Option<Record<string, unknown>> => {
  const payload = jwt.split(".")[1]
  if (payload === undefined) return Option.none()
  return Either.getRight(Encoding.decodeBase64UrlString(payload)).pipe(
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
}

/** The document after a successful refresh at `now`. Unknown fields are kept. */
export const applyRefresh = (doc: AuthDocument, refreshed: RefreshedTokens, now: Date): AuthDocument => {
  if (doc.tokens == null) return doc
  return {
    ...doc,
    tokens: {
      ...doc.tokens,
      access_token: refreshed.accessToken ?? doc.tokens.access_token,
      id_token: refreshed.idToken ?? doc.tokens.id_token,
      refresh_token: refreshed.refreshToken ?? doc.tokens.refresh_token
    },
    last_refresh: now.toISOString()
  }
}

/** The document after signing in with an API key. Unknown top-level fields are kept. */
export const withApiKey = (doc: Option.Option<AuthDocument>, apiKey: Redacted.Redacted<string>): AuthDocument => {
  const { last_refresh: _lastRefresh, tokens: _tokens, ...rest } = Option.getOrElse(doc, (): AuthDocument => ({}))
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
export const withTokens = (doc: Option.Option<AuthDocument>, tokens: Tokens, now: Date): AuthDocument => {
  const accountId = tokens.account_id ?? idTokenClaims(tokens).accountId
  return {
    ...Option.getOrElse(doc, (): AuthDocument => ({})),
    auth_mode: "chatgpt",
    OPENAI_API_KEY: null,
    tokens: { ...tokens, account_id: accountId },
    last_refresh: now.toISOString()
  }
}
