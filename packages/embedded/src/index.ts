export { runQuickstart } from "./quickstart.ts";
export {
  type DevAuth,
  devAudience,
  devIssuer,
  devOperator,
  type Embedded,
  type EmbeddedOptions,
  startEmbedded,
} from "./start-embedded.ts";
