import type { Step, StepState } from "./api-types.ts";

/** A node of the drawn step graph. */
export interface GraphNode {
  readonly id: string;
  readonly step: Step;
  /** For a map: its children's states, counted. */
  readonly childStates?: ReadonlyMap<StepState, number>;
  readonly childCount: number;
}

/** The step graph as nodes and edges, map children folded into their map node. */
export interface GraphModel {
  readonly nodes: readonly GraphNode[];
  readonly edges: readonly { from: string; to: string }[];
}

/**
 * The run's graph from its steps (plan order, `parentId` for nesting): top-level steps in
 * sequence, a `parallel` step fanning out to its children and in again to the next step, a
 * `map` step as one node holding its children (listed apart when expanded).
 */
export function buildGraphModel(steps: readonly Step[]): GraphModel {
  const children = new Map<string, Step[]>();
  for (const step of steps) {
    if (step.parentId === undefined) continue;
    const siblings = children.get(step.parentId) ?? [];
    siblings.push(step);
    children.set(step.parentId, siblings);
  }
  const nodes: GraphNode[] = [];
  const edges: { from: string; to: string }[] = [];
  const add = (step: Step): string[] => {
    const own = children.get(step.id) ?? [];
    if (step.kind === "map") {
      const counts = new Map<StepState, number>();
      for (const child of own) counts.set(child.state, (counts.get(child.state) ?? 0) + 1);
      nodes.push({ id: step.id, step, childStates: counts, childCount: own.length });
      return [step.id];
    }
    nodes.push({ id: step.id, step, childCount: own.length });
    if (step.kind !== "parallel" || own.length === 0) return [step.id];
    const exits: string[] = [];
    for (const child of own) {
      edges.push({ from: step.id, to: child.id });
      exits.push(...add(child));
    }
    return exits;
  };
  let previous: string[] = [];
  for (const step of steps) {
    if (step.parentId !== undefined) continue;
    for (const from of previous) edges.push({ from, to: step.id });
    previous = add(step);
  }
  return { nodes, edges };
}

/** The direct children of a map step, in plan order. */
export function mapChildren(steps: readonly Step[], mapId: string): Step[] {
  return steps.filter((step) => step.parentId === mapId);
}
