/**
 * The secrets audit: every line the library and the examples write during the
 * suite (children's stderr, CLI output without --include-token, in-process
 * console output) is appended to one file, searched for secrets at the end.
 */
import { appendFileSync, mkdirSync } from "node:fs"
import { dirname, join } from "node:path"

export const auditFile = join(
  import.meta.dirname,
  "..",
  "..",
  "node_modules",
  ".cache",
  "effect-auth-test",
  "output.log"
)

export const record = (source: string, text: string) => {
  if (text.length === 0) return
  mkdirSync(dirname(auditFile), { recursive: true })
  appendFileSync(auditFile, `--- ${source}\n${text}\n`)
}

/** The values tests saw that are secret but carry no marker (codes, verifiers, a provider's opaque tokens). */
export const secretsFile = join(dirname(auditFile), "secrets.list")

/** Adds values no output may hold; the audit searches for each of them at the end of the run. */
export const recordSecret = (...values: ReadonlyArray<string>) => {
  const worth = values.filter((value) => value.length >= 8)
  if (worth.length === 0) return
  mkdirSync(dirname(secretsFile), { recursive: true })
  appendFileSync(secretsFile, worth.map((value) => `${value}\n`).join(""))
}

/** What no output may hold: every fixture secret carries "SECRET"; JWTs and API keys by shape. */
export const secretPatterns: ReadonlyArray<RegExp> = [
  /SECRET/,
  /eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/,
  /sk-[A-Za-z0-9-]{6,}/,
  /rt_fixture_refresh_token/
]
