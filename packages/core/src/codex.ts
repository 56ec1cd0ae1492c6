/**
 * What this library shares with the Codex CLI, as data: where Codex keeps
 * credentials in the OS keyring and how its "v2" record is assembled, the
 * one setting of `config.toml` the programs honour, and the shapes of the
 * Codex app server's protocol.
 */
import { sha256Hex } from "./canonicalJson.js"

// ---------------------------------------------------------------------------
// The keyring items
// ---------------------------------------------------------------------------

/** The service name of every item Codex keeps its CLI credentials under. */
export const keyringService = "Codex Auth"

/**
 * Codex's keyring account for the credentials of the folder whose canonical path is
 * `canonicalPath` (service `Codex Auth`): `cli|` and the first 16 hex digits of its SHA-256.
 */
export const accountOf = (canonicalPath: string): string => `cli|${sha256Hex(canonicalPath).slice(0, 16)}`

const v2 = (account: string, ...parts: ReadonlyArray<string>) => [account, "v2", ...parts].join("|")

/** The item of a "v2" layout that names its current revision. */
export const activeAccount = (account: string): string => v2(account, "active")

/** The item of one field of revision `revision` of a "v2" record. */
export const fieldAccount = (account: string, revision: string, field: RecordField): string =>
  v2(account, revision, field)

/** The items of a "v2" record, one per field. */
export const recordFields = [
  "manifest",
  "OPENAI_API_KEY",
  "tokens.id_token",
  "tokens.access_token",
  "tokens.refresh_token",
  "tokens.account_id"
] as const
export type RecordField = typeof recordFields[number]

/** The manifest of a "v2" record: which fields it has. */
export interface Manifest {
  readonly auth_mode?: string | null | undefined
  readonly has_openai_api_key: boolean
  readonly has_tokens: boolean
  readonly has_account_id: boolean
  readonly last_refresh?: string | null | undefined
}

/** The manifest item's text read; undefined when it is not one. */
export const parseManifest = (text: string): Manifest | undefined => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined
  const { auth_mode, has_account_id, has_openai_api_key, has_tokens, last_refresh } = value as Record<string, unknown>
  const optionalString = (field: unknown) => field === undefined || field === null || typeof field === "string"
  return typeof has_openai_api_key === "boolean" && typeof has_tokens === "boolean" &&
      typeof has_account_id === "boolean" && optionalString(auth_mode) && optionalString(last_refresh)
    ? {
      has_openai_api_key,
      has_tokens,
      has_account_id,
      ...(auth_mode === undefined ? {} : { auth_mode: auth_mode as string | null }),
      ...(last_refresh === undefined ? {} : { last_refresh: last_refresh as string | null })
    }
    : undefined
}

/** The field items a record with `manifest` has (besides the manifest), each required. */
export const fieldsOf = (manifest: Manifest): ReadonlyArray<Exclude<RecordField, "manifest">> => [
  ...(manifest.has_openai_api_key ? ["OPENAI_API_KEY" as const] : []),
  ...(manifest.has_tokens
    ? [
      "tokens.id_token" as const,
      "tokens.access_token" as const,
      "tokens.refresh_token" as const,
      ...(manifest.has_account_id ? ["tokens.account_id" as const] : [])
    ]
    : [])
]

/**
 * The `auth.json` text a "v2" record stands for, in the order and form Codex writes it
 * (`OPENAI_API_KEY` always, null when none), from the values of `fieldsOf(manifest)`.
 */
export const assembleRecord = (
  manifest: Manifest,
  values: Readonly<Partial<Record<Exclude<RecordField, "manifest">, string>>>
): string => {
  const document: Record<string, unknown> = {}
  if (manifest.auth_mode !== undefined && manifest.auth_mode !== null) document.auth_mode = manifest.auth_mode
  document.OPENAI_API_KEY = manifest.has_openai_api_key ? values.OPENAI_API_KEY ?? null : null
  if (manifest.has_tokens) {
    document.tokens = {
      id_token: values["tokens.id_token"] ?? null,
      access_token: values["tokens.access_token"] ?? null,
      refresh_token: values["tokens.refresh_token"] ?? null,
      account_id: manifest.has_account_id ? values["tokens.account_id"] ?? null : null
    }
  }
  if (manifest.last_refresh !== undefined && manifest.last_refresh !== null) {
    document.last_refresh = manifest.last_refresh
  }
  return JSON.stringify(document)
}

// ---------------------------------------------------------------------------
// config.toml
// ---------------------------------------------------------------------------

/** Where the programs keep the credentials. */
export const credentialsStoreModes = ["file", "keyring", "auto", "ephemeral"] as const
export type CredentialsStoreMode = typeof credentialsStoreModes[number]

export const configFileName = "config.toml"
export const settingName = "cli_auth_credentials_store"
/** A Codex config.toml is a few KiB; one larger than this is not read. */
export const maxConfigBytes = 1024 * 1024

const keyPattern = new RegExp(`^\\s*(?:${settingName}|"${settingName}"|'${settingName}')\\s*=\\s*(.*)$`)
// A basic string (no escapes in any allowed value) or a literal string, then an optional comment.
const valuePattern = /^(?:"([^"\\]*)"|'([^']*)')\s*(?:#.*)?$/

/** What a config.toml says of `cli_auth_credentials_store`. */
export type StoreModeSetting =
  | { readonly _tag: "Unset" }
  | { readonly _tag: "Set"; readonly mode: CredentialsStoreMode }
  | { readonly _tag: "Invalid"; readonly problem: string }

const unset: StoreModeSetting = { _tag: "Unset" }

/**
 * The value of `cli_auth_credentials_store` in the text of a config.toml. Only that top-level key
 * is read, by a small line reader rather than a TOML parser: keys after the first table header
 * belong to tables, and text inside multi-line strings is skipped. A value Codex would refuse is
 * refused, with what is allowed.
 */
export const parseStoreMode = (text: string): StoreModeSetting => {
  let inMultiline: string | undefined
  for (const line of text.split(/\r?\n/)) {
    if (inMultiline !== undefined) {
      if (line.includes(inMultiline)) inMultiline = undefined
      continue
    }
    // A multi-line string opened (and not closed) on this line: its next lines are text, not keys.
    for (const quote of ["\"\"\"", "'''"]) {
      if (line.split(quote).length === 2) inMultiline = quote
    }
    if (/^\s*\[/.test(line)) return unset
    const key = keyPattern.exec(line)
    if (key === null) continue
    const value = valuePattern.exec(key[1]!.trim())
    const mode = value === null ? undefined : value[1] ?? value[2]
    if (mode === undefined) {
      return { _tag: "Invalid", problem: `${settingName} must be a string, one of ${credentialsStoreModes.join(", ")}` }
    }
    return (credentialsStoreModes as ReadonlyArray<string>).includes(mode)
      ? { _tag: "Set", mode: mode as CredentialsStoreMode }
      : {
        _tag: "Invalid",
        problem: `${settingName} is "${mode}"; it must be one of ${credentialsStoreModes.join(", ")}`
      }
  }
  return unset
}

// ---------------------------------------------------------------------------
// The app server's protocol
// ---------------------------------------------------------------------------

/** JSON-RPC 2.0 error codes. */
export const rpcErrorCode = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603
} as const

/** The plan types the Codex protocol knows; anything else is reported as "unknown". */
const planTypes: ReadonlySet<string> = new Set([
  "free",
  "go",
  "plus",
  "pro",
  "prolite",
  "promax",
  "team",
  "self_serve_business_prolite",
  "self_serve_business_usage_based",
  "business",
  "ent26",
  "enterprise_cbp_automation",
  "enterprise_cbp_usage_based",
  "enterprise",
  "edu",
  "edu_plus",
  "edu_pro",
  "sci",
  "sci_plus",
  "unknown"
])

/** The plan type as the protocol names it: a known one, else "unknown". */
export const planTypeOf = (plan: string | null): string => (plan !== null && planTypes.has(plan) ? plan : "unknown")

/** A method name safe to repeat in a message: quoted, at most 80 characters. */
export const quoted = (method: string): string =>
  JSON.stringify(method.length > 80 ? `${method.slice(0, 80)}…` : method)
