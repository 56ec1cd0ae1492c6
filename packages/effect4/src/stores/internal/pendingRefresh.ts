/**
 * The pending refresh kept beside `auth.json` when its tokens could not be
 * written there (Codex's lock held by a stuck program when the process
 * stops): the refresh token it replaced and what it received, nothing else.
 * It is part of the credential store, with `auth.json`'s protection (0600,
 * written atomically in the same folder), and is adopted only while
 * `auth.json` still holds the refresh token it replaced.
 */
import { Duration, Effect, Option, Result, Schema } from "effect"
import type { PendingRefresh } from "../../document/AuthDocument.js"
import type { AuthStoreError } from "../../errors/Errors.js"

/** The file's name, beside `auth.json` (not `auth.json.*`: those are Codex's and its temporaries). */
export const pendingName = "auth-pending-refresh.json"
/** The most of it that is read: three tokens and two numbers. */
export const maxPendingBytes = 64 * 1024

const Secret = Schema.RedactedFromValue(Schema.NonEmptyString)

const PendingFile = Schema.Struct({
  replaced_refresh_token: Secret,
  access_token: Schema.optionalKey(Secret),
  refresh_token: Schema.optionalKey(Secret),
  id_token: Schema.optionalKey(Secret),
  expires_in_seconds: Schema.optionalKey(Schema.Number),
  /** When the refresh was answered, in epoch milliseconds. */
  refreshed_at: Schema.Number
})
const PendingJson = Schema.fromJsonString(PendingFile, { space: 2 })

export const encode = (pending: PendingRefresh): string => {
  const { tokens } = pending
  return `${
    Schema.encodeSync(PendingJson)({
      replaced_refresh_token: pending.replaced,
      ...(tokens.accessToken === undefined ? {} : { access_token: tokens.accessToken }),
      ...(tokens.refreshToken === undefined ? {} : { refresh_token: tokens.refreshToken }),
      ...(tokens.idToken === undefined ? {} : { id_token: tokens.idToken }),
      ...(tokens.expiresIn === undefined ? {} : { expires_in_seconds: Duration.toSeconds(tokens.expiresIn) }),
      refreshed_at: pending.at
    })
  }\n`
}

/** The pending refresh `text` holds; none when it is not one (its content is never repeated). */
export const decode = (text: string): Option.Option<PendingRefresh> =>
  Option.map(Result.getSuccess(Schema.decodeUnknownResult(PendingJson)(text)), (file) => ({
    replaced: file.replaced_refresh_token,
    tokens: {
      ...(file.access_token === undefined ? {} : { accessToken: file.access_token }),
      ...(file.refresh_token === undefined ? {} : { refreshToken: file.refresh_token }),
      ...(file.id_token === undefined ? {} : { idToken: file.id_token }),
      ...(file.expires_in_seconds === undefined ? {} : { expiresIn: Duration.seconds(file.expires_in_seconds) })
    },
    at: file.refreshed_at
  }))

/** How a store reads and writes the file's text. */
export interface Backend {
  readonly location: string
  readonly read: Effect.Effect<Option.Option<string>, string>
  /** Writes the text atomically, 0600 (none removes the file). */
  readonly write: (text: Option.Option<string>) => Effect.Effect<void, AuthStoreError>
}

/** `keepPending` and `loadPending` of an `AuthStore` over `backend`. */
export const operations = (backend: Backend) => ({
  pendingLocation: backend.location,
  keepPending: (pending: Option.Option<PendingRefresh>) => backend.write(Option.map(pending, encode)),
  // Unusable content is said and ignored: it can only be a pending refresh that no longer matters.
  loadPending: backend.read.pipe(
    Effect.flatMap(Option.match({
      onNone: () => Effect.succeedNone,
      onSome: (text) =>
        Option.match(decode(text), {
          onNone: () => Effect.fail("unexpected content"),
          onSome: (pending) => Effect.succeed(Option.some(pending))
        })
    })),
    Effect.catch((problem) =>
      Effect.as(
        Effect.logWarning("Ignoring the pending refresh kept beside the credentials").pipe(
          Effect.annotateLogs({ file: backend.location, problem })
        ),
        Option.none<PendingRefresh>()
      )
    )
  )
})
