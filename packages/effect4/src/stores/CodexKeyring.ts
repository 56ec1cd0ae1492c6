/**
 * Where the Codex CLI keeps its credentials in the OS keyring, and how (the
 * item names and the v2 record's assembly are the core's, `@effect-auth-manager/core/codex`).
 *
 * - One item per `CODEX_HOME`: service `Codex Auth`, account `cli|` and the
 *   first 16 hex digits of SHA-256 of the canonical `CODEX_HOME` path; its
 *   secret is the whole `auth.json` document as compact JSON. This is what
 *   Codex 0.169 reads and writes ("legacy" to newer versions).
 * - Newer versions of Codex write a "v2" layout instead: an `active` item
 *   (`cli|…|v2|active`) naming a revision, and one item per field of that
 *   revision (`cli|…|v2|<revision>|manifest`, `…|OPENAI_API_KEY`,
 *   `…|tokens.id_token`, `…|tokens.access_token`, `…|tokens.refresh_token`,
 *   `…|tokens.account_id`). They read it before the single item.
 *
 * Both are read here (v2 first, as the versions that write it do); only the
 * single item is written, and a v2 record is then removed, so that no
 * version of Codex reads stale credentials over ours.
 */
import * as Codex from "@effect-auth-manager/core/codex"
import { Effect, Option, Schema } from "effect"
import { maxFileBytes } from "../util/boundedRead.js"
import type { Keyring, KeyringError } from "./Keyring.js"

/** Codex's account for the credentials of the folder whose canonical path is `canonicalPath`. */
export const { accountOf, activeAccount } = Codex

/** What the keyring holds for an account: the document's text and which layout it came from. */
export interface Found {
  readonly text: string
  readonly layout: "single" | "v2"
  /** The v2 revision the text was assembled from. */
  readonly revision?: string
}

/**
 * What the keyring holds cannot be used: a v2 record that cannot be read whole (a field missing, a
 * bad manifest), or an item too large. A read error, not "signed out".
 */
export class ItemProblem extends Schema.TaggedError<ItemProblem>()("ItemProblem", { problem: Schema.String }) {}

/** The v2 record `revision` of `account`, assembled into the `auth.json` document it stands for. */
const readV2 = (keyring: Keyring, account: string, revision: string) =>
  Effect.gen(function*() {
    const field = (name: Codex.RecordField) =>
      Effect.flatMap(keyring.get(Codex.fieldAccount(account, revision, name)), (value) =>
        Option.match(value, {
          onNone: () =>
            Effect.fail(new ItemProblem({ problem: `the keyring's v2 record ${revision} lacks its ${name}` })),
          onSome: Effect.succeed
        }))
    const manifest = Codex.parseManifest(yield* field("manifest"))
    if (manifest === undefined) {
      return yield* new ItemProblem({
        problem: `the keyring's v2 record ${revision} has a manifest that cannot be read`
      })
    }
    const values: Partial<Record<Codex.RecordField, string>> = {}
    for (const name of Codex.fieldsOf(manifest)) values[name] = yield* field(name)
    return Codex.assembleRecord(manifest, values)
  })

/** What the keyring holds for `account`, v2 first; none when it holds nothing. */
export const read = Effect.fnUntraced(function*(
  keyring: Keyring,
  account: string
): Effect.fn.Return<Option.Option<Found>, KeyringError | ItemProblem> {
  const active = yield* keyring.get(activeAccount(account))
  const found = Option.isSome(active)
    ? Option.some<Found>({
      text: yield* readV2(keyring, account, active.value.trim()),
      layout: "v2",
      revision: active.value.trim()
    })
    : Option.map(yield* keyring.get(account), (text): Found => ({ text, layout: "single" }))
  // The binding hands over the whole secret; what is used of it is bounded as a file's read is.
  if (Option.exists(found, (item) => item.text.length > maxFileBytes)) {
    return yield* new ItemProblem({ problem: `the item is larger than ${maxFileBytes} bytes` })
  }
  return found
})

/** Removes a v2 record: the `active` pointer first (readers then fall back to the single item), then its fields. */
export const removeV2 = (keyring: Keyring, account: string, revision: string) =>
  Effect.gen(function*() {
    yield* keyring.remove(activeAccount(account))
    for (const name of Codex.recordFields) yield* keyring.remove(Codex.fieldAccount(account, revision, name))
  })

/** Writes `text` as Codex 0.169 does (the single item), then removes a v2 record that would shadow it. */
export const write = (keyring: Keyring, account: string, text: string, current: Option.Option<Found>) =>
  Effect.gen(function*() {
    yield* keyring.set(account, text)
    if (Option.isSome(current) && current.value.revision !== undefined) {
      yield* removeV2(keyring, account, current.value.revision)
    }
  })

/** Removes every item of `account`: the single item and a v2 record. */
export const remove = (keyring: Keyring, account: string, current: Option.Option<Found>) =>
  Effect.gen(function*() {
    if (Option.isSome(current) && current.value.revision !== undefined) {
      yield* removeV2(keyring, account, current.value.revision)
    }
    yield* keyring.remove(account)
  })
