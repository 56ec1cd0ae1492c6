/**
 * The keys changed elsewhere, read together: each change marks its key, and a few readers read the
 * marked keys in batches (`CredentialStore.getMany`: one statement for many keys on PostgreSQL),
 * adopting each key that is calm (no flight past its turn or its wait for the lock, nothing
 * unsaved) if its state did not change during the read. A key that is not calm, changed
 * meanwhile, or could not be read is read again by itself (`readAlone`: serialised with its saving,
 * and saying why it failed), unless what was read is what its state holds or is saving (a replica
 * hears its own writes). A key marked again while it is read is read once more.
 */
import { Effect, Ref, type Scope } from "effect"
import type { CredentialStoreShape } from "../../stores/CredentialStore.js"
import * as RefreshState from "../RefreshState.js"
import * as Flight from "./flight.js"

/** The most keys read in one go, and how many such reads run at once. */
const readLimit = 500
const readersAtOnce = 2

/** A key held here: its state. */
export interface Held {
  readonly key: string
  readonly state: Ref.Ref<RefreshState.State>
}

export interface Options<C extends Held> {
  readonly credentials: CredentialStoreShape
  /** Where the readers (and the reads alone) run. */
  readonly scope: Scope.Scope
  /** The key held now, if it is. */
  readonly held: (key: string) => C | undefined
  readonly readAlone: (cell: C) => Effect.Effect<void>
}

/** The readers over `options`: `mark` a key changed elsewhere; `stop` starts no reader any more. */
export const make = <C extends Held>({ credentials, held, readAlone, scope }: Options<C>) => {
  const marked = new Set<string>()
  let readers = 0
  // Set when the manager stops: no reader starts any more.
  let stopped = false

  const calm = (state: RefreshState.State) =>
    (state.inflight === undefined || state.inflight.claim.phase === "queued" ||
      state.inflight.claim.phase === "waiting") && !RefreshState.unsaved(state)

  const readTogether = (keys: ReadonlyArray<string>): Effect.Effect<void> =>
    Effect.gen(function*() {
      const together: Array<{ readonly cell: C; readonly before: RefreshState.State; readonly calm: boolean }> = []
      const alone: Array<C> = []
      for (const key of keys) {
        const cell = held(key)
        if (cell === undefined) continue
        const before = yield* Ref.get(cell.state)
        together.push({ cell, before, calm: calm(before) })
      }
      const read = together.length === 0 ? undefined : yield* Effect.either(
        credentials.getMany === undefined
          ? Effect.forEach(together, ({ cell }) => Effect.either(credentials.get(cell.key)), {
            concurrency: "unbounded"
          })
          : credentials.getMany(together.map(({ cell }) => cell.key))
      )
      if (read !== undefined && read._tag === "Left") {
        // Said once for the batch; the next change of each calm key reads it again, the others now alone.
        yield* Effect.logWarning(read.left.message).pipe(Effect.annotateLogs({ credentials: together.length }))
        for (const { calm, cell } of together) if (!calm) alone.push(cell)
      } else if (read !== undefined) {
        for (let i = 0; i < together.length; i++) {
          const { before, calm, cell } = together[i]!
          const got = read.right[i]!
          // A key that could not be read is read alone, which says why (with its key).
          if (got._tag === "Left") {
            alone.push(cell)
            continue
          }
          const stored = got.right
          // Not calm (its flight running, or tokens being saved): read alone, serialised with its
          // saving, unless storage holds what its state knows it holds or is saving (a replica hears
          // its own writes, most often before its flight has heard the write's answer): its saving
          // learns the rest, and a read alone would adopt nothing.
          if (!calm) {
            const now = yield* Ref.get(cell.state)
            const hash = stored.snapshot.hash
            if (now.stored === hash || now.snapshot.hash === hash) yield* Flight.abandonIfAdopted(now)
            else alone.push(cell)
            continue
          }
          const adopted = yield* Ref.modify(cell.state, (state) => {
            if (state !== before) return [undefined, state] as const
            const next = RefreshState.adopt(stored.snapshot)(state)
            return [next, next] as const
          })
          if (adopted === undefined) alone.push(cell)
          else yield* Flight.abandonIfAdopted(adopted)
        }
      }
      // Each on its own fiber: one waiting for its key's save holds up no other key.
      for (const cell of alone) yield* Effect.forkIn(readAlone(cell), scope)
    })

  const reader: Effect.Effect<void> = Effect.suspend(() => {
    if (marked.size === 0) return Effect.void
    const keys: Array<string> = []
    for (const key of marked) {
      marked.delete(key)
      keys.push(key)
      if (keys.length >= readLimit) break
    }
    return Effect.zipRight(readTogether(keys), reader)
  })

  const startReader: Effect.Effect<void> = Effect.suspend(() => {
    if (stopped || readers >= readersAtOnce || marked.size === 0) return Effect.void
    readers++
    // Interruptible (it may be started from the last reader's finalizer): stopping cuts it.
    return Effect.interruptible(reader).pipe(
      // A key marked as the last reader stopped is read by the next one.
      Effect.ensuring(Effect.suspend(() => {
        readers--
        return startReader
      })),
      Effect.forkIn(scope),
      Effect.asVoid
    )
  })

  return {
    mark: (key: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        marked.add(key)
        return startReader
      }),
    stop: Effect.sync(() => {
      stopped = true
    })
  }
}
