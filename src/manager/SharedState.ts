/**
 * The refresh state that processes sharing one `auth.json` share: a sidecar
 * file beside it, `{hash, state, reason, until, at, …}`, with no secret in it.
 * It applies only while `auth.json` still has that hash. The record and its
 * rules are the core's (`@effect-auth-manager/core/sharedHealth`).
 */
import * as Shared from "@effect-auth-manager/core/sharedHealth"
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
export const fromHealth = (hash: string, health: Health, at: number): Option.Option<SharedState> =>
  Option.fromNullable(Shared.sharedOf(hash, health, at))

/** The health another process recorded for snapshot `hash`, if it still applies. */
export const toHealth = (shared: SharedState, hash: string): Option.Option<Health> =>
  Option.map(Option.fromNullable(Shared.sharedFacts(shared, hash)), (facts): Health => {
    const status = facts.status === undefined ? {} : { status: facts.status }
    return facts._tag === "Poisoned"
      ? { _tag: "Poisoned", error: new PermanentRefreshError({ reason: facts.reason, ...status }) }
      : {
        _tag: "CoolingDown",
        until: facts.until,
        attempts: facts.attempts,
        error: new TransientRefreshError({ kind: facts.kind, detail: facts.detail, ...status })
      }
  })

/**
 * The state of `snapshot` as a process finds it: what another process already
 * learned of it (dead, backing off) applies from the first poll.
 */
export const initialState = (snapshot: AuthSnapshot, shared: Option.Option<SharedState>): RefreshState.State =>
  Option.match(Option.flatMap(shared, (record) => toHealth(record, snapshot.hash)), {
    onNone: () => RefreshState.initial(snapshot),
    onSome: (health) => RefreshState.withHealth(snapshot.hash, health)(RefreshState.initial(snapshot))
  })
