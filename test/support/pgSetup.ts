// Global setup of the projects that need PostgreSQL: one cluster for the whole run.
import type { TestProject } from "vitest/node"
import { startCluster } from "./postgres.js"

declare module "vitest" {
  export interface ProvidedContext {
    /** The throwaway cluster's `postgres://` URL (its `postgres` database). */
    readonly databaseUrl: string
  }
}

export default async function setup(project: TestProject) {
  const cluster = await startCluster()
  project.provide("databaseUrl", cluster.url)
  return cluster.stop
}
