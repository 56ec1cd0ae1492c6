// The few parts of `pg` (a dependency of @effect/sql-pg) that the change listener uses.
declare module "pg" {
  import type { EventEmitter } from "node:events"
  export interface ClientConfig {
    readonly connectionString?: string
    readonly host?: string
    readonly port?: number
    readonly database?: string
    readonly user?: string
    readonly password?: string
    readonly keepAlive?: boolean
    readonly connectionTimeoutMillis?: number
    readonly application_name?: string
  }
  export interface Notification {
    readonly processId: number
    readonly channel: string
    readonly payload?: string
  }
  export class Client extends EventEmitter {
    constructor(config?: ClientConfig)
    connect(): Promise<void>
    query(text: string, values?: ReadonlyArray<unknown>): Promise<unknown>
    end(): Promise<void>
  }
  const pg: { readonly Client: typeof Client }
  export default pg
}
