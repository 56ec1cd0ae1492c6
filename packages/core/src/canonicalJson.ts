import { createHash } from "node:crypto"

/**
 * JSON with object keys sorted at every depth, so that two documents that
 * mean the same thing serialise to the same bytes whatever order their
 * writer used.
 */
export const canonicalJson = (value: unknown): string => JSON.stringify(sortKeys(value))

const sortKeys = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(sortKeys)
  if (value !== null && typeof value === "object") {
    const sorted: Record<string, unknown> = {}
    for (const key of Object.keys(value).sort()) {
      const field = (value as Record<string, unknown>)[key]
      if (field !== undefined) sorted[key] = sortKeys(field)
    }
    return sorted
  }
  return value
}

export const sha256Hex = (text: string): string => createHash("sha256").update(text).digest("hex")
