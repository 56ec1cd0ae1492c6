/**
 * What the keyed manager keeps per key (`cells.ts`): the cell a poll reads, what it keeps once it
 * has refreshed, and its flight's dependencies, woken for a refresh.
 */
import { Effect, Option, Ref, type Scope } from "effect"
import type { Settings } from "../../config/Settings.js"
import type { TokenRefresherShape } from "../../oauth/TokenRefresher.js"
import { bind } from "../../stores/AuthStore.js"
import type { AuthStoreShape } from "../../stores/AuthStore.js"
import type { CredentialStoreShape } from "../../stores/CredentialStore.js"
import type { RefreshCoordinatorShape } from "../../stores/RefreshCoordinator.js"
import type { AuthStatus } from "../AuthState.js"
import type * as RefreshState from "../RefreshState.js"
import type * as Flight from "./flight.js"
import * as Persistence from "./persistence.js"
import type * as Turns from "./turns.js"

/** A key's flight and saving, made when it refreshes and dropped when it is done. */
export interface Awake {
  readonly flight: Flight.Flight
  readonly dependencies: KeyDependencies
}

/** What a key's flights share with every other key's. */
export interface Shared {
  readonly credentials: CredentialStoreShape
  readonly coordinator: RefreshCoordinatorShape
  readonly refresher: TokenRefresherShape
  readonly settings: Settings
  readonly scope: Scope.Scope
  readonly turns: Turns.Turns
  readonly withKey: (key: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

/**
 * A key's flight's dependencies. Its store and saving are made when first asked for, when its
 * flight first runs (or stops): most flights that wait for their turn end in line, another
 * replica's write adopted. (A class: getters of its own would give each key's object a shape of
 * its own. So never spread it: a spread copies no getter of its prototype.)
 */
export class KeyDependencies implements Flight.Dependencies {
  readonly refresher: TokenRefresherShape
  readonly settings: Settings
  readonly stateRef: Ref.Ref<RefreshState.State>
  readonly writes: Effect.Semaphore
  readonly scope: Scope.Scope
  readonly requested: Ref.Ref<Option.Option<RefreshState.Flight>>
  readonly turns: Turns.Turns
  readonly annotate: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  readonly key: string
  #store: AuthStoreShape | undefined
  #persistence: Persistence.Persistence | undefined

  constructor(readonly cell: Cell, readonly shared: Shared) {
    const kept = cell.kept ??= {
      writes: Effect.unsafeMakeSemaphore(1),
      requested: Ref.unsafeMake(Option.none<RefreshState.Flight>())
    }
    this.refresher = shared.refresher
    this.settings = shared.settings
    this.stateRef = cell.state
    this.writes = kept.writes
    this.scope = shared.scope
    this.requested = kept.requested
    this.turns = shared.turns
    this.annotate = shared.withKey(cell.key)
    this.key = cell.key
  }

  get store(): AuthStoreShape {
    return this.#store ??= bind(this.cell.key, this.shared.credentials, this.shared.coordinator)
  }

  /** Stops the save retries of the key's saving, if it was ever made. */
  get stopSaving(): Effect.Effect<void> {
    return this.#persistence === undefined ? Effect.void : this.#persistence.stopSaving
  }

  get persistence(): Persistence.Persistence {
    return this.#persistence ??= Persistence.unsafeMake({
      store: this.store,
      settings: this.settings,
      stateRef: this.stateRef,
      writes: this.writes,
      scope: this.scope
    })
  }
}

/**
 * What a key keeps once it has refreshed, even asleep: the lock that serialises its saves with its
 * reloads, and the flight whose request was sent (what stopping waits for). Kept apart from the
 * flight and saving, so that dropping those never splits either.
 */
export interface Kept {
  readonly writes: Effect.Semaphore
  readonly requested: Ref.Ref<Option.Option<RefreshState.Flight>>
}

export interface Cell {
  readonly key: string
  readonly state: Ref.Ref<RefreshState.State>
  /** When a poll last asked for it (epoch milliseconds): unused for `idleTimeToLive`, it is let go. */
  usedAt: number
  awake: Awake | undefined
  kept: Kept | undefined
  /** Handed to the key's full manager: no flight starts here any more. */
  handed: boolean
  /** What a poll answers in the current state, worked out once per state (polls outnumber changes). */
  answered: Answered | undefined
}

export interface Answered {
  readonly state: RefreshState.State
  /** From this instant a poll refreshes without being asked (`RefreshState.staleAt`). */
  readonly staleAt: number
  readonly withToken: AuthStatus
  readonly withoutToken: AuthStatus
}
