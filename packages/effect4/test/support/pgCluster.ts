/**
 * The throwaway PostgreSQL cluster of the Effect 4 edition's PostgreSQL tests: the Effect 3
 * edition's helper (`test/support/postgres.ts`, which imports no Effect), one cluster per test
 * file. Each test takes tables of its own (a fresh prefix), so tests never see each other's rows
 * or notifications.
 */
import { afterAll, beforeAll } from "@effect/vitest"
import { Deferred, Exit, Logger } from "effect"

interface Cluster {
  /** `postgres://postgres@127.0.0.1:PORT/postgres` */
  readonly url: string
  readonly port: number
  readonly stop: () => Promise<void>
}

// Loaded by its address: it lies outside this package's `rootDir`, so a static import would not
// type-check here (its shape is restated above, and checked where it is compiled).
const shared = new URL("../../../../test/support/postgres.ts", import.meta.url).href

const startCluster = async (): Promise<Cluster> => {
  const module = (await import(shared)) as { readonly startCluster: () => Promise<Cluster> }
  return module.startCluster()
}

/** Starts a cluster before the file's tests and stops it after them; `url()` is its address. */
export const useCluster = () => {
  let cluster: Cluster | undefined
  beforeAll(async () => {
    cluster = await startCluster()
  })
  afterAll(async () => {
    await cluster?.stop()
  })
  return {
    url: (): string => {
      if (cluster === undefined) throw new Error("the cluster is not started yet")
      return cluster.url
    }
  }
}

let prefixes = 0

/** A table prefix no other test of this process uses. */
export const freshPrefix = (label: string): string =>
  `t_${label.replace(/\W/g, "_").toLowerCase().slice(0, 16)}_${process.pid % 100_000}_${++prefixes}`

/** A logger that completes `said` when a line containing `text` is written: how a test awaits a step it cannot see. */
export const hearing = (text: string, said: Deferred.Deferred<void>) =>
  Logger.layer([
    Logger.make(({ message }) => {
      if ([message].flat().join(" ").includes(text)) Deferred.doneUnsafe(said, Exit.void)
    })
  ])
