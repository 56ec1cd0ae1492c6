/**
 * The health of a snapshot that the processes (or replicas) sharing a
 * credential tell each other: dead (poisoned) or backing off, with reason
 * codes, statuses and times only, no server text and no secret. It applies
 * only while the credential still has the record's hash.
 */
import { type PermanentReason, permanentReasons } from "./classify.js"
import { type TransientKind, transientKinds } from "./messages.js"
import type { Health, Types } from "./refreshState.js"

/** The record one process shares of snapshot `hash`. */
export type SharedHealth =
  | {
    readonly hash: string
    readonly state: "poisoned"
    readonly reason: PermanentReason
    readonly status?: number | undefined
    readonly at: number
  }
  | {
    readonly hash: string
    readonly state: "cooling-down"
    readonly until: number
    readonly attempts: number
    readonly kind: TransientKind
    /** Written by earlier versions; never written now: the record holds codes only, no text. */
    readonly detail?: string | undefined
    readonly status?: number | undefined
    readonly at: number
  }

const isNumber = (value: unknown): value is number => typeof value === "number"

/** The record `text` holds; undefined when it is not one. */
export const decodeSharedHealth = (text: string): SharedHealth | undefined => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined
  const { at, attempts, detail, hash, kind, reason, state, status, until } = value as Record<string, unknown>
  if (typeof hash !== "string" || !isNumber(at) || !(status === undefined || isNumber(status))) return undefined
  const withStatus = status === undefined ? {} : { status }
  if (state === "poisoned") {
    return (permanentReasons as ReadonlyArray<unknown>).includes(reason)
      ? { hash, state, reason: reason as PermanentReason, ...withStatus, at }
      : undefined
  }
  if (state !== "cooling-down") return undefined
  return isNumber(until) && isNumber(attempts) && (transientKinds as ReadonlyArray<unknown>).includes(kind) &&
      (detail === undefined || typeof detail === "string")
    ? {
      hash,
      state,
      until,
      attempts,
      kind: kind as TransientKind,
      ...(detail === undefined ? {} : { detail }),
      ...withStatus,
      at
    }
    : undefined
}

/** The text a backend stores a record as (compact JSON). */
export const encodeSharedHealth = (record: SharedHealth): string => JSON.stringify(record)

/** The edition types whose errors carry what a record holds. */
export interface SharedTypes extends Types {
  readonly Permanent: { readonly reason: PermanentReason; readonly status?: number | undefined }
  readonly Transient: { readonly kind: TransientKind; readonly status?: number | undefined }
}

/** What to share about snapshot `hash` in `health` at `at`; undefined when healthy. */
export const sharedOf = <T extends SharedTypes>(
  hash: string,
  health: Health<T>,
  at: number
): SharedHealth | undefined => {
  switch (health._tag) {
    case "Healthy":
      return undefined
    case "Poisoned": {
      const { reason, status } = health.error
      return { hash, state: "poisoned", reason, ...(status === undefined ? {} : { status }), at }
    }
    case "CoolingDown": {
      const { kind, status } = health.error
      return {
        hash,
        state: "cooling-down",
        until: health.until,
        attempts: health.attempts,
        kind,
        ...(status === undefined ? {} : { status }),
        at
      }
    }
  }
}

/** What another process recorded of snapshot `hash`, for the edition to build its health from. */
export type SharedFacts =
  | { readonly _tag: "Poisoned"; readonly reason: PermanentReason; readonly status?: number }
  | {
    readonly _tag: "CoolingDown"
    readonly until: number
    readonly attempts: number
    readonly kind: TransientKind
    /** The detail of the transient error: what failed, in codes only. */
    readonly detail: string
    readonly status?: number
  }

/** The facts of `shared` for snapshot `hash`; undefined when the record is of another snapshot. */
export const sharedFacts = (shared: SharedHealth, hash: string): SharedFacts | undefined => {
  if (shared.hash !== hash) return undefined
  const status = shared.status === undefined ? {} : { status: shared.status }
  return shared.state === "poisoned"
    ? { _tag: "Poisoned", reason: shared.reason, ...status }
    : {
      _tag: "CoolingDown",
      until: shared.until,
      attempts: shared.attempts,
      kind: shared.kind,
      detail: `another process's refresh failed (${shared.kind}${
        shared.status === undefined ? "" : `, HTTP ${shared.status}`
      })`,
      ...status
    }
}
