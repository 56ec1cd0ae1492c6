/**
 * The keyed manager's credentials held lightly. Each key is a cell: its state alone (snapshot,
 * health, flight in progress) in one map, read by polls with no fiber, stream or timer of its own.
 * A refresh wakes the key's flight and saving, the very ones a manager runs (`flight.ts`,
 * `persistence.ts`), for as long as it lasts; the cell sleeps again once its tokens are saved. Ten
 * thousand idle credentials are ten thousand snapshots, and a refresh is one flight.
 *
 * A key whose full manager is asked for (`KeyedAuthManager.get`) is handed over to it with its
 * state (unsaved tokens included), once its flight has ended.
 */
import { Deferred, Duration, Effect, FiberId, Metric, Ref, Schedule, type Scope } from "effect"
import type { Settings } from "../../config/Settings.js"
import * as AuthDocument from "../../document/AuthDocument.js"
import type { TokenRefresherShape } from "../../oauth/TokenRefresher.js"
import type { CredentialStoreShape } from "../../stores/CredentialStore.js"
import type { RefreshCoordinatorShape } from "../../stores/RefreshCoordinator.js"
import type { AuthStatus, AuthStatusParams } from "../AuthState.js"
import * as RefreshState from "../RefreshState.js"
import * as SharedState from "../SharedState.js"
import * as Flight from "./flight.js"
import { type Answered, type Awake, type Cell, KeyDependencies, type Shared } from "./key.js"
import { cooldownHits, counted, joinedCallers, poisonHits } from "./metrics.js"
import * as Together from "./together.js"
import * as Turns from "./turns.js"

/** What the cells need of the keyed manager. */
export interface Dependencies {
  readonly credentials: CredentialStoreShape
  readonly coordinator: RefreshCoordinatorShape
  readonly refresher: TokenRefresherShape
  readonly settings: Settings
  /** Where flights, save retries and the idle sweep run; closed after `stopping`. */
  readonly scope: Scope.Scope
  readonly idleTimeToLive: Duration.Duration
  /** The most keys refreshing at once; the others wait for a turn (see `turns.ts`). */
  readonly refreshesAtOnce: number
  /** Tags an effect's logs and spans with the credential key. */
  readonly withKey: (key: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

const notRequired: AuthStatus = { authMethod: null, authToken: null, requiresOpenaiAuth: false }

/** Builds the cells over `dependencies`. */
export const make = Effect.fnUntraced(function*(dependencies: Dependencies) {
  const { coordinator, credentials, refresher, scope, settings, withKey } = dependencies
  const clock = yield* Effect.clock
  const cells = new Map<string, Cell>()
  const opening = new Map<string, Deferred.Deferred<Cell>>()
  const missedWhileOpening = new Set<string>()
  const turns = yield* Turns.make(
    dependencies.refreshesAtOnce,
    scope,
    settings.refreshTimeout,
    coordinator.heldElsewhere
  )
  const shared: Shared = { credentials, coordinator, refresher, settings, scope, turns, withKey }

  // ---- opening a key: its credential and what other processes learned of it ----------------
  // A key that cannot be read is logged out here (and said), as a manager starts: the next change
  // heard for it reads it again.
  const load = (key: string) =>
    Effect.zipWith(
      credentials.get(key).pipe(
        Effect.map((stored) => stored.snapshot),
        Effect.catchTag("AuthStoreError", (error) => Effect.as(Effect.logWarning(error.message), AuthDocument.absent))
      ),
      coordinator.getHealth(key),
      SharedState.initialState,
      { concurrent: true }
    )

  // Concurrent polls of a key not open yet share one read. If the poll that reads gives up (it is
  // interrupted), the others read it themselves.
  const open = (key: string): Effect.Effect<Cell> =>
    Effect.suspend(() => {
      const existing = cells.get(key)
      if (existing !== undefined) return Effect.succeed(existing)
      const pending = opening.get(key)
      if (pending !== undefined) return Effect.catchAllCause(Deferred.await(pending), () => open(key))
      const made = Deferred.unsafeMake<Cell>(FiberId.none)
      opening.set(key, made)
      return load(key).pipe(
        withKey(key),
        Effect.map((state): Cell => {
          const cell: Cell = {
            key,
            state: Ref.unsafeMake(state),
            usedAt: clock.unsafeCurrentTimeMillis(),
            awake: undefined,
            kept: undefined,
            handed: false,
            answered: undefined
          }
          cells.set(key, cell)
          return cell
        }),
        // A change heard while the key was being read: it is read again.
        Effect.tap(() => missedWhileOpening.delete(key) ? reload(key) : Effect.void),
        Effect.onExit((exit) => {
          opening.delete(key)
          return Deferred.done(made, exit)
        })
      )
    })

  // ---- a refresh: the key's flight and saving, woken for it -----------------------------------
  // The key's store and saving are made when its flight first runs (or stops): most flights that
  // wait for their turn end in line, another replica's write adopted.
  const wake = (cell: Cell): Awake => {
    if (cell.awake !== undefined) return cell.awake
    const dependencies = new KeyDependencies(cell, shared)
    return cell.awake = { flight: Flight.make(dependencies), dependencies }
  }

  /** Whether the cell's flight and saving are done with: no flight, nothing unsaved. */
  const restful = (state: RefreshState.State) => state.inflight === undefined && !RefreshState.unsaved(state)

  const sleepIfDone = (cell: Cell) =>
    Effect.map(Ref.get(cell.state), (state) => {
      if (cell.awake !== undefined && restful(state)) cell.awake = undefined
    })

  // As a manager's poll: a refresh only when asked or stale; a poisoned snapshot answers from its
  // poison record; a decision that makes no request does not wake the key.
  const refreshed = (cell: Cell, state: RefreshState.State): Effect.Effect<void> => {
    const decision = RefreshState.decide(state, clock.unsafeCurrentTimeMillis(), settings)
    switch (decision._tag) {
      case "Skip":
        return Effect.void
      case "Poisoned":
        return Metric.increment(poisonHits)
      case "CoolingDown":
        return Metric.increment(cooldownHits)
      case "Join":
        return Effect.zipRight(
          Metric.increment(joinedCallers),
          Effect.ignore(turns.await(decision.flight))
        )
      case "Start":
        // A key handed to its full manager meanwhile starts no flight of its own here.
        if (cell.handed) return Effect.void
        // Not tagged with the key here: a caller waits, and its flight (tagged) does the work.
        return Effect.suspend(() => wake(cell).flight.refreshQuietly()).pipe(
          Effect.zipRight(sleepIfDone(cell))
        )
    }
  }

  const answeredOf = (cell: Cell, state: RefreshState.State): Answered =>
    cell.answered?.state === state ? cell.answered : (cell.answered = {
      state,
      staleAt: RefreshState.staleAt(state.snapshot, settings),
      withToken: RefreshState.statusOf(state, true),
      withoutToken: RefreshState.statusOf(state, false)
    })

  const answer = (cell: Cell, params: AuthStatusParams | undefined): Effect.Effect<AuthStatus> =>
    Effect.flatMap(Ref.get(cell.state), (state) => {
      const now = clock.unsafeCurrentTimeMillis()
      cell.usedAt = now
      const includeToken = params?.includeToken === true
      const answered = answeredOf(cell, state)
      const reply = Effect.succeed(includeToken ? answered.withToken : answered.withoutToken)
      if (state.snapshot.method !== "chatgpt" || params?.noRefresh === true) return reply
      if (params?.refreshToken !== true && now < answered.staleAt) return reply
      if (state.health._tag === "Poisoned") return counted(poisonHits, reply)
      return Effect.zipRight(
        refreshed(cell, state),
        Effect.map(Ref.get(cell.state), (after) => {
          const fresh = answeredOf(cell, after)
          return includeToken ? fresh.withToken : fresh.withoutToken
        })
      )
    })

  /** `getAuthStatus` of `key`, as a manager answers it. */
  const status = (key: string, params?: AuthStatusParams): Effect.Effect<AuthStatus> =>
    !settings.requiresOpenaiAuth
      ? Effect.succeed(notRequired)
      : Effect.flatMap(open(key), (cell) => answer(cell, params))

  // ---- another process changed a key: adopted ---------------------------------------------------
  // A reload must not make older credentials current: one read before this process saved newer ones
  // (its flight's write) would. While the key is awake, the reload is serialised with its saving
  // (as a manager's); asleep, it adopts only if the state did not change during the read.
  const reloadCell = (cell: Cell): Effect.Effect<void> =>
    Effect.gen(function*() {
      for (let attempt = 0; attempt < 3; attempt++) {
        const kept = cell.kept
        if (cell.awake !== undefined && kept !== undefined) {
          return yield* kept.writes.withPermits(1)(
            Effect.flatMap(
              credentials.get(cell.key),
              (stored) => Ref.updateAndGet(cell.state, RefreshState.adopt(stored.snapshot))
            )
          ).pipe(Effect.flatMap(Flight.abandonIfAdopted))
        }
        const before = yield* Ref.get(cell.state)
        const stored = yield* credentials.get(cell.key)
        const adopted = yield* Ref.modify(
          cell.state,
          (state) =>
            state === before && cell.awake === undefined
              ? [true, RefreshState.adopt(stored.snapshot)(state)] as const
              : [false, state] as const
        )
        if (adopted) return
      }
      // The key kept changing here during each read (its own refreshes): the next change reads it again.
      yield* Effect.logDebug("Reading the credential again gave way to this process's own changes")
    }).pipe(
      Effect.catchTag("AuthStoreError", (error) => Effect.logWarning(error.message)),
      withKey(cell.key)
    )

  const together = Together.make({ credentials, scope, held: (key) => cells.get(key), readAlone: reloadCell })

  /** Reads `key` again, if it is held here (with other keys changed meanwhile: `together.ts`). */
  const reload = (key: string): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (!cells.has(key)) return Effect.sync(() => opening.has(key) && missedWhileOpening.add(key))
      return together.mark(key)
    })

  // ---- letting go ---------------------------------------------------------------------------------
  /**
   * Hands `key` to its full manager: its state once its first read and its flight have ended (none
   * when not held); no flight starts here any more; its save retries stop, the manager's go on.
   */
  const handOver = (key: string): Effect.Effect<RefreshState.State | undefined> =>
    Effect.gen(function*() {
      const reading = opening.get(key)
      if (reading !== undefined) yield* Effect.exit(Deferred.await(reading))
      const cell = cells.get(key)
      if (cell === undefined) return undefined
      cell.handed = true
      while (true) {
        const { inflight } = yield* Ref.get(cell.state)
        if (inflight === undefined) break
        yield* Deferred.await(inflight.ended)
      }
      if (cells.get(key) === cell) cells.delete(key)
      if (cell.awake !== undefined) yield* cell.awake.dependencies.stopSaving
      return yield* Ref.get(cell.state)
    })

  // Keys unused for their idle time, with no flight and nothing unsaved, are let go (within a
  // quarter of that time more: they are looked at every quarter of it).
  const idleMs = Duration.toMillis(dependencies.idleTimeToLive)
  const sweep = Effect.suspend(() =>
    Effect.forEach(Array.from(cells.values()), (cell) =>
      Effect.map(Ref.get(cell.state), (state) => {
        if (!restful(state)) return
        cell.awake = undefined
        if (clock.unsafeCurrentTimeMillis() - cell.usedAt >= idleMs && cells.get(cell.key) === cell) {
          cells.delete(cell.key)
        }
      }), { discard: true })
  )
  yield* sweep.pipe(
    Effect.repeat(Schedule.spaced(Duration.millis(Math.max(1, idleMs / 4)))),
    Effect.forkIn(scope)
  )

  /**
   * When stopping: no flight waiting for its turn starts any more (its callers are interrupted);
   * every key with a flight or unsaved tokens has its flight whose request was sent waited for and
   * its answer saved, as a manager's (bounded by `shutdownWait`, then `shutdownSaveWait`), all
   * keys at once.
   */
  const stopping = Effect.zipRight(
    Effect.zipRight(together.stop, turns.close),
    Effect.suspend(() =>
      Effect.forEach(
        Array.from(cells.values()),
        (cell) =>
          Effect.flatMap(Ref.get(cell.state), (state) =>
            restful(state) ?
              Effect.void :
              Effect.suspend(() => {
                const { persistence, requested } = wake(cell).dependencies
                return withKey(cell.key)(persistence.stopping(requested))
              })),
        { concurrency: "unbounded", discard: true }
      )
    )
  )

  return {
    status,
    reload,
    /** Reads every key held here again (the change feed was cut). */
    reloadAll: Effect.suspend(() => Effect.forEach(Array.from(cells.keys()), reload, { discard: true })),
    handOver,
    stopping,
    keys: Effect.sync(() => Array.from(cells.keys()))
  }
})

/** The cells of a keyed manager (see `make`). */
export type Cells = Effect.Effect.Success<ReturnType<typeof make>>
