/**
 * Every environment variable the configuration reads, each with the description it carries
 * (`Config.withDescription` in each edition): the one list, from which docs/configuration.md's
 * table is generated.
 */
/** The environment variables `layerConfig` reads, and what each sets. */
export const variables = {
  CODEX_HOME: "the folder of auth.json (default $HOME/.codex; set to nothing: the default, as in Codex)",
  EFFECT_AUTH_CREDENTIALS_STORE:
    "file, keyring, auto or ephemeral: where the programs keep the credentials (default: cli_auth_credentials_store in $CODEX_HOME/config.toml, else file)",
  EFFECT_AUTH_REFRESH_TIMEOUT:
    "how long callers wait for the token endpoint; the request stays open up to 5 minutes for its answer (default 30 seconds)",
  CODEX_REFRESH_TOKEN_URL_OVERRIDE: "the token endpoint (default Codex's); http:// or https:// only",
  EFFECT_AUTH_CLIENT_ID: "the OAuth client id (default Codex's)",
  EFFECT_AUTH_CLIENT_SECRET: "the OAuth client secret, if the client has one",
  EFFECT_AUTH_REFRESH_BODY: "json (default, as Codex) or form",
  EFFECT_AUTH_REFRESH_WINDOW: "refresh this long before the access token expires (default 5 minutes)",
  EFFECT_AUTH_MIN_REFRESH_INTERVAL: "never refresh more often than this (default 30 seconds)",
  EFFECT_AUTH_BACKOFF_BASE:
    "the retry interval for the first ten transient failures in a row, after which it grows (default 1 second)",
  EFFECT_AUTH_REQUIRES_OPENAI_AUTH: "false: getAuthStatus reports that no sign-in is needed (default true)",
  EFFECT_AUTH_ISSUER: "an OpenID Connect issuer to sign in with and refresh through",
  EFFECT_AUTH_CLIENT_AUTH: "none, client_secret_post or client_secret_basic",
  EFFECT_AUTH_SCOPES: "the scopes a sign-in asks for",
  CODEX_APP_SERVER_LOGIN_ISSUER: "the issuer of the Codex sign-in (default https://auth.openai.com)",
  CODEX_APP_SERVER_LOGIN_CLIENT_ID: "the client of the Codex sign-in (default Codex's)",
  EFFECT_AUTH_LOGIN_ORIGINATOR: "the originator a Codex sign-in names (default codex_cli_rs)",
  EFFECT_AUTH_LOGIN_PORTS: "the loopback ports of a browser sign-in, e.g. 1455,1457 (0: any free port)",
  EFFECT_AUTH_LOGIN_TIMEOUT: "how long a sign-in waits for the user (default 10 minutes)",
  EFFECT_AUTH_DATABASE_URL: "a postgres:// URL: keep the credentials in PostgreSQL instead of auth.json",
  EFFECT_AUTH_CREDENTIAL_KEY: "the credential the programs use in the database (default default)",
  EFFECT_AUTH_DATABASE_TABLE_PREFIX:
    "the prefix of the library's tables (default effect_auth): a-z, 0-9 and _, not a digit first, at most 40",
  EFFECT_AUTH_DATABASE_POOL_SIZE:
    "connections in the database pool, 1 to 100 (default 4); a replica uses one more to listen",
  EFFECT_AUTH_LOG_LEVEL:
    "the programs' log level on stderr (default Info; Warning for effect-auth, whose stderr a person reads)"
} as const

export type Variable = keyof typeof variables
