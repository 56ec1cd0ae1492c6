/**
 * The services of the example app server: the manager over `auth.json` (or
 * PostgreSQL, see `layers.ts`), the sign-ins, Node's file system and HTTP
 * client. `app-server.ts` loads this module while it answers `initialize`,
 * which needs none of it.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Layer } from "effect"
import { layerNodeHttpClient } from "../src/node/layerNode.js"
import { SignIn } from "../src/signin/SignIn.js"
import { layerProgram } from "./layers.js"

export const services = SignIn.layer.pipe(
  Layer.provideMerge(Layer.mergeAll(layerProgram, NodeContext.layer, layerNodeHttpClient))
)
