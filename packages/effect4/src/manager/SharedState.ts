/**
 * The refresh state that processes sharing one `auth.json` share: a sidecar
 * file beside it, `{hash, state, reason, until, at, …}`, with no secret in it.
 * It applies only while `auth.json` still has that hash. This module maps the
 * shared record to and from this edition's errors.
 */
import { Option } from "effect"
import type { AuthSnapshot } from "../document/AuthDocument.js"
import { PermanentRefreshError, TransientRefreshError } from "../errors/Errors.js"
import { SharedHealth, SharedHealthJson } from "../stores/RefreshCoordinator.js"
import * as RefreshState from "./RefreshState.js"
import type { Health } from "./RefreshState.js"

// The record is public (RefreshCoordinator.SharedHealth): other backends name it.
export const SharedState = SharedHealth
export type SharedState = SharedHealth

export const SharedStateJson = SharedHealthJson

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
          detail: `another process's refresh failed (${shared.kind}${
            shared.status === undefined ? "" : `, HTTP ${shared.status}`
          })`,
          ...status
        })
      }
  )
}

/**
 * The state of `snapshot` as a process finds it: what another process already
 * learned of it (dead, backing off) applies from the first poll.
 */
export const initialState = (snapshot: AuthSnapshot, shared: Option.Option<SharedState>): RefreshState.State =>
  Option.match(Option.flatMap(shared, (record) => toHealth(record, snapshot.hash)), {
    onNone: () => RefreshState.initial(snapshot),
    onSome: (health) => RefreshState.withHealth(snapshot.hash, health)(RefreshState.initial(snapshot))
  })
