/**
 * Credentials for the scenarios, with no Effect in them: a Codex auth.json and tokens whose values are
 * distinctive enough to search any output for.
 */

/** A JWT with the given payload and no valid signature: the library reads claims, never verifies them. */
export const unsignedJwt = (payload: Record<string, unknown>): string =>
  [{ alg: "none", typ: "JWT" }, payload].map((part) => Buffer.from(JSON.stringify(part)).toString("base64url"))
    .concat("signature").join(".")

export const secrets = {
  access: unsignedJwt({ exp: 4_102_444_800, marker: "scenario-access-SECRET-1" }),
  refresh: "scenario-refresh-SECRET-2",
  apiKey: "sk-scenario-api-key-SECRET-3",
  newAccess: "scenario-access-SECRET-4",
  newRefresh: "scenario-refresh-SECRET-5",
  loginAccess: "scenario-login-access-SECRET-6",
  loginRefresh: "scenario-login-refresh-SECRET-7"
}

export const idToken = unsignedJwt({
  email: "ada@example.com",
  "https://api.openai.com/auth": { chatgpt_plan_type: "plus", chatgpt_account_id: "acct_123" }
})

const day = 86_400_000

/**
 * A ChatGPT auth.json as the Codex CLI writes it, at test-clock time 0: its access token valid until
 * 2100 unless `expiresIn` (milliseconds from 0) says otherwise, refreshed 10 days ago unless
 * `refreshedAgo` says otherwise (so the minimum interval between refreshes does not apply).
 */
export const chatgptAuth = (options: {
  readonly expiresIn?: number
  readonly refreshedAgo?: number
  readonly access?: string
  readonly refresh?: string
} = {}): Record<string, unknown> => ({
  auth_mode: "chatgpt",
  OPENAI_API_KEY: null,
  tokens: {
    id_token: idToken,
    access_token: options.access ??
      (options.expiresIn === undefined
        ? secrets.access
        : unsignedJwt({ exp: Math.floor(options.expiresIn / 1000), marker: "scenario-access-SECRET-1" })),
    refresh_token: options.refresh ?? secrets.refresh,
    account_id: "acct_123"
  },
  last_refresh: new Date(-(options.refreshedAgo ?? 10 * day)).toISOString()
})

export const apiKeyAuth = (): Record<string, unknown> => ({ OPENAI_API_KEY: secrets.apiKey })
