/**
 * effect-auth-manager/postgres: the credential store and refresh coordination
 * in PostgreSQL, for a fleet of replicas and many credentials. A separate
 * entry point, so that programs on the file store never load `@effect/sql-pg`.
 */
export * as PgStore from "./PgStore.js"
