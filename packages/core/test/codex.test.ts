import * as Codex from "@effect-auth-manager/core/codex"
import { createHash } from "node:crypto"
import { describe, expect, it } from "vitest"

describe("codex: the keyring items", () => {
  it("one account per CODEX_HOME, and the items of a v2 record beside it", () => {
    const account = Codex.accountOf("/home/ada/.codex")
    expect(account).toBe(`cli|${createHash("sha256").update("/home/ada/.codex").digest("hex").slice(0, 16)}`)
    expect(Codex.activeAccount(account)).toBe(`${account}|v2|active`)
    expect(Codex.keyringService).toBe("Codex Auth")
    expect(Codex.fieldAccount(account, "r7", "tokens.refresh_token")).toBe(`${account}|v2|r7|tokens.refresh_token`)
  })

  it("a manifest is read whole or not at all", () => {
    const manifest = { has_openai_api_key: false, has_tokens: true, has_account_id: true, auth_mode: "chatgpt" }
    expect(Codex.parseManifest(JSON.stringify(manifest))).toEqual(manifest)
    expect(Codex.parseManifest(JSON.stringify({ ...manifest, last_refresh: null }))).toEqual({
      ...manifest,
      last_refresh: null
    })
    for (
      const bad of ["{", "[]", JSON.stringify({ ...manifest, has_tokens: "yes" }), JSON.stringify({ has_tokens: true })]
    ) {
      expect(Codex.parseManifest(bad), bad).toBeUndefined()
    }
    expect(Codex.parseManifest(JSON.stringify({ ...manifest, auth_mode: 5 }))).toBeUndefined()
  })

  it("a record's fields, and the auth.json it stands for, in Codex's order", () => {
    const tokens = { has_openai_api_key: false, has_tokens: true, has_account_id: false, last_refresh: "2026-01-01" }
    expect(Codex.fieldsOf(tokens)).toEqual(["tokens.id_token", "tokens.access_token", "tokens.refresh_token"])
    expect(Codex.assembleRecord({ ...tokens, auth_mode: "chatgpt" }, {
      "tokens.id_token": "i",
      "tokens.access_token": "a",
      "tokens.refresh_token": "r"
    })).toBe(
      `{"auth_mode":"chatgpt","OPENAI_API_KEY":null,"tokens":{"id_token":"i","access_token":"a","refresh_token":"r","account_id":null},"last_refresh":"2026-01-01"}`
    )
    const key = { has_openai_api_key: true, has_tokens: false, has_account_id: false }
    expect(Codex.fieldsOf(key)).toEqual(["OPENAI_API_KEY"])
    expect(Codex.assembleRecord(key, { OPENAI_API_KEY: "sk" })).toBe(`{"OPENAI_API_KEY":"sk"}`)
    expect(Codex.fieldsOf({ ...tokens, has_account_id: true, has_openai_api_key: true })).toEqual([
      "OPENAI_API_KEY",
      "tokens.id_token",
      "tokens.access_token",
      "tokens.refresh_token",
      "tokens.account_id"
    ])
  })
})

describe("codex: cli_auth_credentials_store in config.toml", () => {
  const cases: ReadonlyArray<readonly [string, Codex.StoreModeSetting]> = [
    ["", { _tag: "Unset" }],
    ["model = \"o3\"\n", { _tag: "Unset" }],
    ["cli_auth_credentials_store = \"keyring\"\n", { _tag: "Set", mode: "keyring" }],
    ["model = \"o3\"\ncli_auth_credentials_store='auto'   # as Codex documents it\r\n", { _tag: "Set", mode: "auto" }],
    ["\"cli_auth_credentials_store\" = \"ephemeral\"", { _tag: "Set", mode: "ephemeral" }],
    // A key of a table is not the top-level setting.
    ["[profiles.work]\ncli_auth_credentials_store = \"keyring\"\n", { _tag: "Unset" }],
    // Nor is text inside a multi-line string.
    ["instructions = \"\"\"\ncli_auth_credentials_store = \"keyring\"\n\"\"\"\n", { _tag: "Unset" }],
    ["instructions = '''\ncli_auth_credentials_store = \"keyring\"\n'''\nmodel = \"o3\"\n", { _tag: "Unset" }],
    [
      "cli_auth_credentials_store = \"keychain\"\n",
      {
        _tag: "Invalid",
        problem: "cli_auth_credentials_store is \"keychain\"; it must be one of file, keyring, auto, ephemeral"
      }
    ],
    [
      "cli_auth_credentials_store = true\n",
      { _tag: "Invalid", problem: "cli_auth_credentials_store must be a string, one of file, keyring, auto, ephemeral" }
    ]
  ]
  for (const [text, expected] of cases) {
    it(`reads ${JSON.stringify(text)}`, () => {
      expect(Codex.parseStoreMode(text)).toEqual(expected)
    })
  }
})

describe("codex: the app server's protocol", () => {
  it("plan types the protocol knows, others as unknown; method names quoted and bounded", () => {
    expect(["plus", "enterprise", "edu_pro"].map(Codex.planTypeOf)).toEqual(["plus", "enterprise", "edu_pro"])
    expect([null, "platinum", ""].map(Codex.planTypeOf)).toEqual(["unknown", "unknown", "unknown"])
    expect(Codex.quoted("account/read")).toBe("\"account/read\"")
    expect(Codex.quoted("x".repeat(100))).toBe(JSON.stringify(`${"x".repeat(80)}…`))
    expect(Codex.rpcErrorCode.methodNotFound).toBe(-32601)
  })
})
