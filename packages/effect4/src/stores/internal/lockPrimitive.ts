/**
 * This process's lock primitive for Codex's `auth.json.lock` (the core's prebuilt
 * addon),
 * decided once, on first use.
 */
import * as Core from "@effect-auth-manager/core/lockPrimitive"

export type Primitive = Core.Primitive

let current: Primitive | undefined

/** This process's primitive, found on first use. */
export const get = (): Primitive => (current ??= Core.find(Core.nodeHost()))

/** Tests only: makes `get` answer `primitive` (undefined: find it again). */
export const setForTesting = (primitive: Primitive | undefined): void => {
  current = primitive
}
