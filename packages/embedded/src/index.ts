export { runQuickstart } from "./quickstart.ts";
export { type Embedded, type EmbeddedOptions, startEmbedded } from "./start-embedded.ts";
