/**
 * This process's lock primitive for Codex's `auth.json.lock` (found by the
 * core from this package's files: `native/prebuilds` at the package's root),
 * decided once, on first use.
 */
import * as Core from "@effect-auth-manager/core/lockPrimitive"
import { dirname } from "node:path"
import { fileURLToPath } from "node:url"

export type Primitive = Core.Primitive

let current: Primitive | undefined

/** This process's primitive, found on first use. */
export const get = (): Primitive => (current ??= Core.find(Core.nodeHost(dirname(fileURLToPath(import.meta.url)))))

/** Tests only: makes `get` answer `primitive` (undefined: find it again). */
export const setForTesting = (primitive: Primitive | undefined): void => {
  current = primitive
}
