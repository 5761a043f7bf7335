/** Bounds that keep parsing and planning fast and small whatever the input. */
export interface PackLimits {
  /** Largest manifest accepted, in bytes of UTF-8. */
  maxBytes: number;
  /** Deepest nesting of YAML collections. */
  maxDepth: number;
  /** Most alias dereferences (`*anchor`) in one manifest. */
  maxAliases: number;
  /** Most steps declared, counting every nested step once. */
  maxDeclaredSteps: number;
  /** Most steps in a plan after map expansion. */
  maxPlannedSteps: number;
  /** Longest expression, in characters. */
  maxExpressionLength: number;
}

/** The limits packrun applies unless configured otherwise; docs/task-pack-format.md lists them. */
export const defaultPackLimits: Readonly<PackLimits> = {
  maxBytes: 512 * 1024,
  maxDepth: 64,
  maxAliases: 100,
  maxDeclaredSteps: 2000,
  maxPlannedSteps: 10000,
  maxExpressionLength: 4096,
};
