/**
 * Databases on the suite's throwaway PostgreSQL cluster (started by
 * `pgSetup.ts`): each test file takes a fresh one, so files never see each
 * other's rows or notifications.
 */
import pg from "pg"
import { inject } from "vitest"

let created = 0

/** Creates an empty database and returns its `postgres://` URL. */
export const freshDatabase = async (label: string): Promise<string> => {
  const url = inject("databaseUrl")
  const name = `t_${label.replace(/\W/g, "_").toLowerCase()}_${process.pid}_${++created}`
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query(`CREATE DATABASE "${name}"`)
  } finally {
    await client.end()
  }
  const next = new URL(url)
  next.pathname = `/${name}`
  return next.toString()
}

/** Runs one statement on the database at `url` (for arranging a test, and for looking). */
export const query = async <Row = Record<string, unknown>>(url: string, text: string, values: Array<unknown> = []) => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return ((await client.query(text, values)) as unknown as { rows: Array<Row> }).rows
  } finally {
    await client.end()
  }
}
