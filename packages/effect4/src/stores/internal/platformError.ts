/**
 * What a `PlatformError` says, for messages and decisions: its normalised
 * reason and description, and the errno code (Effect names only a few).
 */
import type { PlatformError } from "effect/PlatformError"

/** "NotFound (ENOENT: no such file…)": the reason, and the system's words when it gave some. */
export const describe = (error: PlatformError): string => {
  const { reason } = error
  if (reason._tag === "BadArgument") return reason.message
  // Node's own words ("EACCES: permission denied, open '…'") are on the cause, not in the description.
  const detail = reason.description ?? (reason.cause instanceof Error ? reason.cause.message : undefined)
  return `${reason._tag}${detail ? ` (${detail})` : ""}`
}

export const isNotFound = (error: PlatformError): boolean => error.reason._tag === "NotFound"

/** The errno code of a platform error (EACCES, EROFS, EXDEV…), when the system gave one. */
export const errnoOf = (error: PlatformError): string | undefined => {
  const { reason } = error
  if (reason._tag === "BadArgument") return undefined
  const code = (reason.cause as NodeJS.ErrnoException | undefined)?.code
  return typeof code === "string" ? code : /^(E[A-Z]+)\b/.exec(reason.description ?? "")?.[1]
}
