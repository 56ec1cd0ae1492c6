/**
 * Saving refreshed tokens: the compare-and-set of a refresh, the retries of a save that failed,
 * the last save when the manager stops, and the pending refresh kept beside the credentials.
 */
import { Deferred, Duration, Effect, Either, Fiber, Option, Redacted, Ref, Schedule, Scope } from "effect"
import type { Settings } from "../../config/Settings.js"
import * as AuthDocument from "../../document/AuthDocument.js"
import { AuthStoreError } from "../../errors/Errors.js"
import type { AuthStoreShape } from "../../stores/AuthStore.js"
import { logDebugAnnotated } from "../../util/debugLog.js"
import * as RefreshState from "../RefreshState.js"
import { countAttempt } from "./metrics.js"

/** What saving needs of the manager. */
export interface Dependencies {
  readonly store: AuthStoreShape
  readonly settings: Settings
  /** The state (a `SubscriptionRef` for a manager; a plain `Ref` for a keyed manager's light credential). */
  readonly stateRef: Ref.Ref<RefreshState.State>
  /** Serialises every change of storage made by this process with the adoption that follows it. */
  readonly writes: Effect.Semaphore
  /** Where the save retries run. */
  readonly scope: Scope.Scope
}

interface Saving extends Dependencies {
  readonly update: (f: (state: RefreshState.State) => RefreshState.State) => Effect.Effect<void>
  readonly saveRetries: Ref.Ref<boolean>
  readonly saver: Ref.Ref<Option.Option<Fiber.RuntimeFiber<unknown, unknown>>>
  readonly unsavedWarned: Ref.Ref<boolean>
  readonly lastSaveProblem: Ref.Ref<string>
  readonly aside: Ref.Ref<Option.Option<RefreshState.Pending>>
}

// The pending refresh kept beside the credentials (`AuthStore.keepPending`), when the store has a
// place for it: written as soon as refreshed tokens cannot be saved, so that not even a crash loses
// them, and removed once they are saved. `aside` is what it holds now.
const asideOf = ({ aside, stateRef, store }: Saving) => {
  const keepAside = Effect.gen(function*() {
    const { pending } = yield* Ref.get(stateRef)
    if (store.keepPending === undefined || pending === undefined) {
      return false
    }
    if (
      Option.exists(yield* Ref.get(aside), (written) => written === pending)
    ) {
      return true
    }
    return yield* store.keepPending(Option.some(pending)).pipe(
      Effect.zipRight(Ref.set(aside, Option.some(pending))),
      Effect.as(true),
      Effect.catchAll((error) =>
        Effect.as(
          Effect.logWarning("Refreshed tokens could not be kept beside the credentials either").pipe(
            Effect.annotateLogs({ file: error.path, problem: error.problem })
          ),
          false
        )
      )
    )
  })
  // `always`: whoever wrote it (a sign-in or sign-out replaces what any kept refresh was for).
  const removeAside = (always: boolean) =>
    Effect.gen(function*() {
      if (store.keepPending === undefined || (!always && Option.isNone(yield* Ref.get(aside)))) {
        return
      }
      yield* store.keepPending(Option.none()).pipe(
        Effect.zipRight(Ref.set(aside, Option.none())),
        Effect.catchAll((error) =>
          Effect.logWarning("A kept copy of refreshed tokens could not be removed").pipe(
            Effect.annotateLogs({ file: error.path, problem: error.problem })
          )
        )
      )
    })
  return { keepAside, removeAside, clearAside: removeAside(false) }
}

// Saves unsaved refreshed tokens against what storage is known to hold. If it changed, `adopt`
// applies them onto what it holds while it still holds the refresh token they replaced, and the
// save is tried again (a few times at most: then it is retried later); anything else in storage
// is newer than the refresh, and is used instead.
const maxReapply = 5
const saveUnsavedHoldingOf = ({ stateRef, store, update }: Saving) =>
  Effect.gen(function*() {
    for (let reapplied = 0; reapplied <= maxReapply; reapplied++) {
      const state = yield* Ref.get(stateRef)
      if (!RefreshState.unsaved(state)) {
        return "saved" as const
      }
      const result = yield* store.compareAndSet(state.stored, state.snapshot.document)
      if (result._tag === "Written") {
        // The state may have moved on during the write (a refresh of the very tokens being saved,
        // made current before its own save waits): what was written is then adopted under it, and
        // its newer tokens applied onto it, still to be saved (the next turn saves them).
        yield* update((now) =>
          now.snapshot === state.snapshot
            ? RefreshState.adoptSaved(result.snapshot)(now)
            : RefreshState.adopt(result.snapshot)(now)
        )
        if (!RefreshState.unsaved(yield* Ref.get(stateRef))) return "saved" as const
        continue
      }
      yield* update(RefreshState.adopt(result.current))
      if (!RefreshState.unsaved(yield* Ref.get(stateRef))) {
        return "superseded" as const
      }
    }
    return yield* new AuthStoreError({
      path: store.location,
      operation: "write",
      problem: "storage kept changing during the save"
    })
  })

// Tokens still unsaved when the manager stops would be lost with it, and the next start would send
// the refresh token in storage, already replaced. The retries in the background stop; one last
// try, short (whoever holds the lock has held it for seconds already); then they are kept beside
// the credentials for the next start, and that is said in one line.
const saveBeforeStoppingOf = (
  { lastSaveProblem, saver, settings, stateRef, store }: Saving,
  saveUnsaved: Effect.Effect<void, AuthStoreError>,
  keepAside: Effect.Effect<boolean>
) =>
  Effect.gen(function*() {
    if (!RefreshState.unsaved(yield* Ref.get(stateRef))) return
    yield* Effect.flatMap(Ref.get(saver), Option.match({ onNone: () => Effect.void, onSome: Fiber.interrupt }))
    const saved = yield* Effect.interruptible(saveUnsaved).pipe(
      Effect.timeoutFail({
        duration: settings.shutdownSaveWait,
        onTimeout: () =>
          new AuthStoreError({
            path: store.location,
            operation: "lock",
            problem: `not saved within ${Duration.format(settings.shutdownSaveWait)} while stopping`
          })
      }),
      Effect.either
    )
    if (Either.isRight(saved)) return
    const problem = (yield* Ref.get(lastSaveProblem)) || saved.left.problem
    if (yield* keepAside) {
      return yield* Effect.logError(
        "Stopping before refreshed tokens could be saved: they are kept beside the credentials, and the next start with this store adopts and saves them"
      ).pipe(Effect.annotateLogs({ kept: store.pendingLocation ?? store.location, problem }))
    }
    yield* Effect.logError(
      "Stopping with refreshed tokens that could not be saved or kept: signing in again may be needed"
    ).pipe(Effect.annotateLogs({ file: store.location, problem }))
  })

// Refreshed tokens that could not be saved stay current (served, and the next refresh sends their
// refresh token, never the old one); saving them is retried with backoff until storage takes them
// or someone else writes it.
const retriesOf = (
  saving: Saving,
  saveUnsaved: Effect.Effect<void, AuthStoreError>,
  keepAside: Effect.Effect<boolean>
) => {
  const { lastSaveProblem, saveRetries, saver, scope, settings, unsavedWarned } = saving
  const saveRetrySchedule = Schedule.exponential(settings.backoffBase).pipe(
    Schedule.union(Schedule.spaced(settings.backoffCap)),
    Schedule.jittered
  )
  const keepSaving = (delay: Duration.Duration) =>
    Effect.gen(function*() {
      if (yield* Ref.getAndSet(saveRetries, true)) return
      const fiber = yield* Effect.sleep(delay).pipe(
        Effect.zipRight(saveUnsaved),
        Effect.tapError((error) =>
          Effect.zipRight(
            Ref.set(lastSaveProblem, error.problem),
            Effect.logDebug("Saving the refreshed tokens failed again").pipe(
              Effect.annotateLogs({ problem: error.problem })
            )
          )
        ),
        Effect.retry(saveRetrySchedule),
        Effect.interruptible,
        Effect.ensuring(Ref.set(saveRetries, false)),
        Effect.forkIn(scope)
      )
      yield* Ref.set(saver, Option.some(fiber))
    }).pipe(Effect.uninterruptible)
  const keepUnsaved = Effect.fnUntraced(function*(error: AuthStoreError) {
    yield* Ref.set(lastSaveProblem, error.problem)
    if (!(yield* Ref.getAndSet(unsavedWarned, true))) {
      yield* Effect.logWarning(
        "Refreshed tokens could not be saved: they are used from memory, and saving is retried"
      ).pipe(
        Effect.annotateLogs({ file: error.path, problem: error.problem })
      )
    }
    yield* keepAside
    yield* keepSaving(settings.backoffBase)
  })
  return { keepSaving, keepUnsaved }
}

// The refreshed tokens are made current (unsaved) first, before any wait: from the answer on, they
// are this process's credentials whatever happens to the save (a shutdown that interrupts it while
// it waits for the lock still finds them, saves them or keeps them aside). Then the save, written
// only if storage still holds what was refreshed (under Codex's lock); if storage changed meanwhile,
// `saveUnsavedHolding` applies them onto what it holds now, or gives way to it.
const commitOf = (
  { stateRef, store, update, writes }: Saving,
  saveUnsavedHolding: Effect.Effect<"saved" | "superseded", AuthStoreError>,
  keepUnsaved: (error: AuthStoreError) => Effect.Effect<void>,
  clearAside: Effect.Effect<void>
) =>
(
  base: string,
  request: Extract<RefreshState.Plan, { readonly _tag: "Request" }>,
  tokens: AuthDocument.RefreshedTokens,
  now: number
) =>
  Effect.gen(function*() {
    yield* countAttempt("success")
    const pending: RefreshState.Pending = { tokens, replaced: request.refreshToken, at: now }
    const next = AuthDocument.snapshot(AuthDocument.applyRefresh(request.document, tokens, new Date(now)))
    yield* update(RefreshState.adoptUnsaved(next, base, pending))
    const saved = yield* Effect.either(writes.withPermits(1)(saveUnsavedHolding))
    // Not saved: the refreshed tokens are served from memory, and saving is retried.
    if (Either.isLeft(saved)) return yield* keepUnsaved(saved.left)
    // Saved, and ours: the current credentials carry the access token this refresh received (a
    // sign-in or newer credentials may have replaced them meanwhile).
    const current = yield* Ref.get(stateRef)
    const ours = tokens.accessToken === undefined
      ? current.snapshot.hash === next.hash
      : RefreshState.holds(current, tokens.accessToken)
    if (saved.right === "saved" && ours) {
      yield* store.saveShared(Option.none())
      yield* logDebugAnnotated("Access token refreshed and saved", { snapshot: next.hash.slice(0, 12) })
    } else {
      yield* Effect.logDebug("Storage changed during the refresh: what it holds is adopted, the result dropped")
    }
    yield* clearAside
  })

// When stopping: the flight whose token request was sent (`requested`) is waited for, then what is
// still unsaved gets its last save. It may no longer be the state's flight: a newer one (of
// credentials rewritten meanwhile) can be waiting for the lock it holds. A finalizer runs
// uninterruptibly: each wait in it is made interruptible, or its bound would not hold.
const stoppingOf = ({ settings }: Saving, saveBeforeStopping: Effect.Effect<void>) => {
  // Its callers may have stopped waiting (`refreshTimeout`): the flight ends when its answer is saved.
  const waitFor = (flight: RefreshState.Flight) =>
    Effect.logInfo("Stopping: waiting for the refresh in flight to finish and be saved").pipe(
      Effect.zipRight(
        Effect.interruptible(Deferred.await(flight.ended)).pipe(Effect.timeoutOption(settings.shutdownWait))
      ),
      Effect.flatMap(Option.match({
        onNone: () => Effect.logWarning("Stopping without the refresh in flight: it did not finish in time"),
        onSome: () => Effect.logDebug("The refresh in flight is done")
      }))
    )
  return (requested: Ref.Ref<Option.Option<RefreshState.Flight>>) =>
    Effect.flatMap(Ref.get(requested), (sent) =>
      Option.match(sent, {
        onNone: () => Effect.void,
        onSome: (flight) =>
          Effect.flatMap(Deferred.isDone(flight.ended), (ended) => ended ? Effect.void : waitFor(flight))
      })).pipe(Effect.zipRight(saveBeforeStopping))
}

// A refresh an earlier run kept: saved now if it applied, removed if the credentials moved on since.
const resumeKeptOf = (
  { aside, store }: Saving,
  keepSaving: (delay: Duration.Duration) => Effect.Effect<void>,
  removeAside: (always: boolean) => Effect.Effect<void>
) =>
(kept: Option.Option<RefreshState.Pending>, resumed: Option.Option<RefreshState.State>) =>
  Effect.gen(function*() {
    if (Option.isSome(kept)) {
      const file = store.pendingLocation ?? store.location
      if (Option.isSome(resumed)) {
        yield* Ref.set(aside, kept)
        yield* Effect.logInfo("Adopted refreshed tokens an earlier run kept but could not save; saving them").pipe(
          Effect.annotateLogs({ file })
        )
        yield* keepSaving(Duration.zero)
      } else {
        yield* removeAside(true)
        yield* Effect.logInfo("Removed a kept refresh that no longer applies: the credentials changed since").pipe(
          Effect.annotateLogs({ file })
        )
      }
    }
  })

// Everything saving does, with its own state: made when first used (see `unsafeMake`).
const partsOf = (dependencies: Dependencies) => {
  const { stateRef, store, writes } = dependencies
  const saving: Saving = {
    ...dependencies,
    update: (f) => Ref.update(stateRef, f),
    saveRetries: Ref.unsafeMake(false),
    // The fiber of the retries, stopped when the manager stops (interrupting one that ended does nothing).
    saver: Ref.unsafeMake(Option.none<Fiber.RuntimeFiber<unknown, unknown>>()),
    unsavedWarned: Ref.unsafeMake(false),
    // Why the last save failed (a lock held by another program, a read-only folder): said when stopping.
    lastSaveProblem: Ref.unsafeMake(""),
    aside: Ref.unsafeMake(Option.none<RefreshState.Pending>())
  }
  const { clearAside, keepAside, removeAside } = asideOf(saving)
  const saveUnsavedHolding = saveUnsavedHoldingOf(saving)
  const saveUnsaved = writes.withPermits(1)(Effect.tap(saveUnsavedHolding, () => clearAside)).pipe(
    Effect.flatMap((outcome) =>
      outcome === "saved"
        ? Effect.logInfo("Refreshed tokens that could not be saved before are saved now")
        : Effect.logWarning(
          "The credentials changed in storage before refreshed tokens could be saved: using the stored ones"
        )
    )
  )
  const saveBeforeStopping = saveBeforeStoppingOf(saving, saveUnsaved, keepAside)
  const { keepSaving, keepUnsaved } = retriesOf(saving, saveUnsaved, keepAside)
  return {
    commit: commitOf(saving, saveUnsavedHolding, keepUnsaved, clearAside),
    /** The pending refresh kept beside the credentials, if it replaced `refreshToken` (what `stored` holds). */
    keptFor: (stored: AuthDocument.AuthSnapshot, refreshToken: Redacted.Redacted<string>) =>
      store.loadPending === undefined ? Effect.succeedNone : Effect.map(
        store.loadPending,
        Option.filter((pending) =>
          Redacted.value(pending.replaced) === Redacted.value(refreshToken) &&
          RefreshState.resume(stored, pending) !== undefined
        )
      ),
    keepSaving,
    removeAside,
    stopSaving: Effect.flatMap(
      Ref.get(saving.saver),
      Option.match({ onNone: () => Effect.void, onSome: Fiber.interrupt })
    ),
    /** Records that the pending refresh kept beside the credentials is `kept`. */
    setAside: (kept: Option.Option<RefreshState.Pending>) => Ref.set(saving.aside, kept),
    stopping: stoppingOf(saving, saveBeforeStopping),
    resumeKept: resumeKeptOf(saving, keepSaving, removeAside)
  }
}

/** The saving of refreshed tokens (see `unsafeMake`). */
export type Persistence = ReturnType<typeof partsOf>

/**
 * The saving of refreshed tokens over `dependencies`, made in place. Its parts and their state are
 * made when first used: a keyed manager makes a saving for each key that refreshes, and most of the
 * keys waiting for their turn at once never use it (another replica's write ends their wait).
 */
export const unsafeMake = (dependencies: Dependencies): Persistence => {
  let parts: Persistence | undefined
  const built = () => (parts ??= partsOf(dependencies))
  return {
    commit: (...args) => built().commit(...args),
    keptFor: (...args) => built().keptFor(...args),
    stopSaving: Effect.suspend(() => parts === undefined ? Effect.void : parts.stopSaving),
    keepSaving: (delay) => built().keepSaving(delay),
    removeAside: (always) => built().removeAside(always),
    setAside: (kept) => built().setAside(kept),
    stopping: (requested) => built().stopping(requested),
    resumeKept: (...args) => built().resumeKept(...args)
  }
}

/** Builds the saving of refreshed tokens over `dependencies` (see `unsafeMake`). */
export const make = (dependencies: Dependencies): Effect.Effect<Persistence> =>
  Effect.sync(() => unsafeMake(dependencies))
