/**
 * The pending refresh kept beside `auth.json` (its file format is the
 * core's, `@effect-auth-manager/core/pendingRefresh`) when its tokens could not be
 * written there (Codex's lock held by a stuck program when the process
 * stops): the refresh token it replaced and what it received, nothing else.
 * It is part of the credential store, with `auth.json`'s protection (0600,
 * written atomically in the same folder), and is adopted only while
 * `auth.json` still holds the refresh token it replaced.
 */
import { mapRefreshed } from "@effect-auth-manager/core/authDocument"
import * as Core from "@effect-auth-manager/core/pendingRefresh"
import { Effect, Option, Redacted } from "effect"
import { type PendingRefresh, refreshedFromCore, refreshedToCore } from "../../document/AuthDocument.js"
import type { AuthStoreError } from "../../errors/Errors.js"

export { maxPendingBytes, pendingName } from "@effect-auth-manager/core/pendingRefresh"

/** The file's text (the core's format) for `pending`. */
export const encode = ({ at, replaced, tokens }: PendingRefresh): string =>
  Core.encodePending({
    replaced: Redacted.value(replaced),
    tokens: mapRefreshed(refreshedToCore(tokens), Redacted.value),
    at
  })

/** The pending refresh `text` holds; none when it is not one (its content is never repeated). */
export const decode = (text: string): Option.Option<PendingRefresh> =>
  Option.map(Option.fromNullable(Core.decodePending(text)), ({ at, replaced, tokens }) => ({
    replaced: Redacted.make(replaced),
    tokens: refreshedFromCore(mapRefreshed(tokens, Redacted.make)),
    at
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
    Effect.catchAll((problem) =>
      Effect.as(
        Effect.logWarning("Ignoring the pending refresh kept beside the credentials").pipe(
          Effect.annotateLogs({ file: backend.location, problem })
        ),
        Option.none<PendingRefresh>()
      )
    )
  )
})
