/**
 * The heap in use after a full collection (twice: what the first frees may let the second free
 * more), for the measures of memory per credential (the `fleet` helper, `bench:refresh-cost`).
 * Exposes the collector to this process on first use.
 */
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"

let gc: (() => void) | undefined

export const heapUsedAfterGc = (): number => {
  if (gc === undefined) {
    setFlagsFromString("--expose-gc")
    gc = runInNewContext("gc") as () => void
  }
  gc()
  gc()
  return process.memoryUsage().heapUsed
}
