/**
 * The file of a pending refresh, kept beside `auth.json` when its tokens
 * could not be written there (Codex's lock held by a stuck program when the
 * process stops): the refresh token it replaced and what it received,
 * nothing else. Each edition's store writes it with `auth.json`'s
 * protection (0600, atomically, in the same folder).
 */
import type { PendingRefresh } from "./authDocument.js"

/** The file's name, beside `auth.json` (not `auth.json.*`: those are Codex's and its temporaries). */
export const pendingName = "auth-pending-refresh.json"
/** The most of it that is read: three tokens and two numbers. */
export const maxPendingBytes = 64 * 1024

/** The file's text for `pending`. */
export const encodePending = (pending: PendingRefresh): string => {
  const { tokens } = pending
  return `${
    JSON.stringify(
      {
        replaced_refresh_token: pending.replaced,
        ...(tokens.accessToken === undefined ? {} : { access_token: tokens.accessToken }),
        ...(tokens.refreshToken === undefined ? {} : { refresh_token: tokens.refreshToken }),
        ...(tokens.idToken === undefined ? {} : { id_token: tokens.idToken }),
        ...(tokens.expiresInMillis === undefined ? {} : { expires_in_seconds: tokens.expiresInMillis / 1000 }),
        refreshed_at: pending.at
      },
      null,
      2
    )
  }\n`
}

const isSecret = (value: unknown): value is string => typeof value === "string" && value.length > 0

/** The pending refresh `text` holds; undefined when it is not one (its content is never repeated). */
export const decodePending = (text: string): PendingRefresh | undefined => {
  let file: unknown
  try {
    file = JSON.parse(text)
  } catch {
    return undefined
  }
  if (file === null || typeof file !== "object" || Array.isArray(file)) return undefined
  const { access_token, expires_in_seconds, id_token, refresh_token, refreshed_at, replaced_refresh_token } =
    file as Record<string, unknown>
  const optionalSecrets = [access_token, refresh_token, id_token]
  if (
    !isSecret(replaced_refresh_token) || typeof refreshed_at !== "number" ||
    !optionalSecrets.every((value) => value === undefined || isSecret(value)) ||
    !(expires_in_seconds === undefined || typeof expires_in_seconds === "number")
  ) return undefined
  return {
    replaced: replaced_refresh_token,
    tokens: {
      ...(access_token === undefined ? {} : { accessToken: access_token as string }),
      ...(refresh_token === undefined ? {} : { refreshToken: refresh_token as string }),
      ...(id_token === undefined ? {} : { idToken: id_token as string }),
      ...(expires_in_seconds === undefined ? {} : { expiresInMillis: expires_in_seconds * 1000 })
    },
    at: refreshed_at
  }
}
