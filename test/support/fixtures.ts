import { Redacted } from "effect"
import { unsignedJwt } from "../../src/testing/TokenEndpoint.js"

/** Token values distinctive enough to search any output for. */
export const secrets = {
  access: unsignedJwt({ exp: 4_102_444_800, marker: "access-token-SECRET-1" }),
  refresh: "refresh-token-SECRET-2",
  apiKey: "sk-test-api-key-SECRET-3",
  newAccess: "access-token-SECRET-4",
  newRefresh: "refresh-token-SECRET-5"
}

export const idToken = unsignedJwt({
  email: "ada@example.com",
  "https://api.openai.com/auth": {
    chatgpt_plan_type: "plus",
    chatgpt_user_id: "user-1",
    chatgpt_account_id: "acct_123"
  }
})

const day = 86_400_000

export interface ChatgptFixture {
  /** The clock's now, in epoch milliseconds (TestClock starts at 0). */
  readonly now?: number
  /** The access token's `exp`, in milliseconds from now; none for an opaque token. */
  readonly expiresIn?: number
  /** How long ago the last refresh was; 10 days by default, so the minimum interval does not apply. */
  readonly refreshedAgo?: number
  readonly accessToken?: string
  readonly refreshToken?: string
  readonly extra?: Record<string, unknown>
}

/** A ChatGPT `auth.json` as the Codex CLI writes it. */
export const chatgptJson = (options: ChatgptFixture = {}): Record<string, unknown> => {
  const now = options.now ?? 0
  const access = options.accessToken ??
    (options.expiresIn === undefined
      ? secrets.access
      : unsignedJwt({ exp: Math.floor((now + options.expiresIn) / 1000), marker: "access-token-SECRET-1" }))
  return {
    auth_mode: "chatgpt",
    OPENAI_API_KEY: null,
    tokens: {
      id_token: idToken,
      access_token: access,
      refresh_token: options.refreshToken ?? secrets.refresh,
      account_id: "acct_123"
    },
    last_refresh: new Date(now - (options.refreshedAgo ?? 10 * day)).toISOString(),
    ...options.extra
  }
}

export const apiKeyJson = (): Record<string, unknown> => ({ OPENAI_API_KEY: secrets.apiKey })

export const tokensOf = (access: string, refresh: string) => ({
  idToken: Redacted.make(idToken),
  accessToken: Redacted.make(access),
  refreshToken: Redacted.make(refresh),
  accountId: "acct_123"
})
