/**
 * The refresh state that processes sharing one `auth.json` share: a sidecar
 * file beside it, `{hash, state, reason, until, at, …}`, with no secret in it.
 * It applies only while `auth.json` still has that hash.
 */
import { Option, Schema } from "effect"
import { PermanentReason, PermanentRefreshError, TransientKind, TransientRefreshError } from "../Errors.js"
import type { Health } from "./refreshState.js"

export const SharedState = Schema.Union(
  Schema.Struct({
    hash: Schema.String,
    state: Schema.Literal("poisoned"),
    reason: PermanentReason,
    status: Schema.optional(Schema.Number),
    at: Schema.Number
  }),
  Schema.Struct({
    hash: Schema.String,
    state: Schema.Literal("cooling-down"),
    until: Schema.Number,
    attempts: Schema.Number,
    kind: TransientKind,
    // Written by earlier versions; never written now: the sidecar holds codes only, no text.
    detail: Schema.optional(Schema.String),
    status: Schema.optional(Schema.Number),
    at: Schema.Number
  })
)
export type SharedState = typeof SharedState.Type

export const SharedStateJson = Schema.parseJson(SharedState)

/** What to share about snapshot `hash` in `health`; none when healthy. */
export const fromHealth = (hash: string, health: Health, at: number): Option.Option<SharedState> => {
  switch (health._tag) {
    case "Healthy":
      return Option.none()
    case "Poisoned": {
      const { reason, status } = health.error
      return Option.some({ hash, state: "poisoned", reason, ...(status === undefined ? {} : { status }), at })
    }
    case "CoolingDown": {
      const { kind, status } = health.error
      return Option.some({
        hash,
        state: "cooling-down",
        until: health.until,
        attempts: health.attempts,
        kind,
        ...(status === undefined ? {} : { status }),
        at
      })
    }
  }
}

/** The health another process recorded for snapshot `hash`, if it still applies. */
export const toHealth = (shared: SharedState, hash: string): Option.Option<Health> => {
  if (shared.hash !== hash) return Option.none()
  const status = shared.status === undefined ? {} : { status: shared.status }
  return Option.some(
    shared.state === "poisoned"
      ? { _tag: "Poisoned", error: new PermanentRefreshError({ reason: shared.reason, ...status }) }
      : {
        _tag: "CoolingDown",
        until: shared.until,
        attempts: shared.attempts,
        error: new TransientRefreshError({
          kind: shared.kind,
          detail: `another process's refresh failed (${shared.kind}${shared.status === undefined ? "" : `, HTTP ${shared.status}`})`,
          ...status
        })
      }
  )
}
