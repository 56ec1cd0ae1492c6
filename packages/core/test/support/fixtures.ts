/** A JWT with no signature, as test issuers make them. */
export const unsignedJwt = (payload: Record<string, unknown>): string =>
  [
    Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url"),
    Buffer.from(JSON.stringify(payload)).toString("base64url"),
    "signature"
  ].join(".")

export const secrets = {
  access: unsignedJwt({ exp: 4_102_444_800, marker: "access-token-SECRET-1" }),
  refresh: "refresh-token-SECRET-2",
  apiKey: "sk-test-api-key-SECRET-3"
}

export const idToken = unsignedJwt({
  email: "ada@example.com",
  "https://api.openai.com/auth": {
    chatgpt_plan_type: "plus",
    chatgpt_user_id: "user-1",
    chatgpt_account_id: "acct_123"
  }
})

/** A ChatGPT `auth.json` as the Codex CLI writes it. */
export const chatgptJson = (
  options: {
    readonly now?: number
    readonly expiresIn?: number
    readonly accessToken?: string
    readonly extra?: object
  } = {}
): Record<string, unknown> => {
  const now = options.now ?? 0
  const access = options.accessToken ??
    (options.expiresIn === undefined
      ? secrets.access
      : unsignedJwt({ exp: Math.floor((now + options.expiresIn) / 1000), marker: "access-token-SECRET-1" }))
  return {
    auth_mode: "chatgpt",
    OPENAI_API_KEY: null,
    tokens: { id_token: idToken, access_token: access, refresh_token: secrets.refresh, account_id: "acct_123" },
    last_refresh: new Date(now - 10 * 86_400_000).toISOString(),
    ...options.extra
  }
}
