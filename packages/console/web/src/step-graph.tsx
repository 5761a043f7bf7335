import { Graph, layout, type Point } from "@dagrejs/dagre";
import { useMemo } from "preact/hooks";
import type { Step } from "./api-types.ts";
import { buildGraphModel, type GraphNode } from "./graph-model.ts";
import { stateLook } from "./states.ts";

const nodeWidth = 176;
const nodeHeight = 52;

interface Props {
  readonly steps: readonly Step[];
  readonly selected: string | undefined;
  readonly expandedMaps: ReadonlySet<string>;
  onSelect(stepId: string): void;
  onToggleMap(stepId: string): void;
}

function kindLabel(node: GraphNode): string {
  switch (node.step.kind) {
    case "approval-gate":
      return "approval gate";
    case "policy-gate":
      return "policy gate";
    case "parallel":
      return `parallel · ${node.childCount}`;
    case "map":
      return `map · ${node.childCount} children`;
    default:
      return "step";
  }
}

function mapSummary(node: GraphNode): string {
  if (node.childStates === undefined) return "";
  return [...node.childStates.entries()]
    .map(([state, count]) => `${count} ${stateLook(state).label}`)
    .join(", ");
}

function Shape({ node }: { node: GraphNode }) {
  const w = nodeWidth;
  const h = nodeHeight;
  if (node.step.kind === "approval-gate" || node.step.kind === "policy-gate")
    // A gate: a hexagon, pointed at both ends like a barrier.
    return (
      <polygon
        class="shape"
        points={`12,0 ${w - 12},0 ${w},${h / 2} ${w - 12},${h} 12,${h} 0,${h / 2}`}
      />
    );
  if (node.step.kind === "map")
    // A map: a stack of cards.
    return (
      <g>
        <rect class="shape stack" x={8} y={-8} width={w - 8} height={h} rx={6} />
        <rect class="shape stack" x={4} y={-4} width={w - 8} height={h} rx={6} />
        <rect class="shape" x={0} y={0} width={w - 8} height={h} rx={6} />
      </g>
    );
  if (node.step.kind === "parallel")
    return <rect class="shape parallel" x={0} y={0} width={w} height={h} rx={h / 2} />;
  return <rect class="shape" x={0} y={0} width={w} height={h} rx={6} />;
}

/**
 * The run's step graph, laid out by dagre, each node with its state as colour, icon and word;
 * every node is a button (Tab to reach, Enter or Space to open; on a map also expands it).
 */
export function StepGraph({ steps, selected, expandedMaps, onSelect, onToggleMap }: Props) {
  const model = useMemo(() => buildGraphModel(steps), [steps]);
  const laidOut = useMemo(() => {
    const graph = new Graph();
    graph.setGraph({ rankdir: "LR", nodesep: 24, ranksep: 48, marginx: 12, marginy: 16 });
    graph.setDefaultEdgeLabel(() => ({}));
    for (const node of model.nodes)
      graph.setNode(node.id, { width: nodeWidth, height: nodeHeight });
    for (const edge of model.edges) graph.setEdge(edge.from, edge.to);
    layout(graph);
    const label = graph.graph();
    return {
      width: Math.ceil(label.width ?? 0),
      height: Math.ceil(label.height ?? 0),
      at: (id: string) => graph.node(id),
      edges: graph.edges().map((edge) => ({
        key: `${edge.v}->${edge.w}`,
        points: (graph.edge(edge).points ?? []) as Point[],
      })),
    };
  }, [model]);
  const activate = (node: GraphNode) => {
    onSelect(node.id);
    if (node.step.kind === "map") onToggleMap(node.id);
  };
  return (
    <div class="graph-scroll">
      {/* biome-ignore lint/a11y/useSemanticElements: the SVG groups its node buttons; a fieldset cannot hold SVG */}
      <svg
        class="graph"
        width={laidOut.width}
        height={laidOut.height}
        role="group"
        aria-label="Step graph"
      >
        <defs>
          <marker
            id="arrow"
            viewBox="0 0 10 10"
            refX="9"
            refY="5"
            markerWidth="6"
            markerHeight="6"
            orient="auto"
          >
            <path d="M0,0 L10,5 L0,10 z" class="arrow" />
          </marker>
        </defs>
        {laidOut.edges.map((edge) => (
          <polyline
            key={edge.key}
            class="edge"
            marker-end="url(#arrow)"
            points={edge.points.map((point: Point) => `${point.x},${point.y}`).join(" ")}
          />
        ))}
        {model.nodes.map((node) => {
          const at = laidOut.at(node.id);
          const look = stateLook(node.step.state);
          const expanded = node.step.kind === "map" ? expandedMaps.has(node.id) : undefined;
          const summary = node.step.kind === "map" ? mapSummary(node) : "";
          return (
            // biome-ignore lint/a11y/useSemanticElements: an SVG node cannot be a <button>
            <g
              key={node.id}
              class={`node tone-${look.tone} kind-${node.step.kind}${selected === node.id ? " selected" : ""}`}
              transform={`translate(${at.x - nodeWidth / 2},${at.y - nodeHeight / 2})`}
              role="button"
              // lower case: an SVG element takes the attribute as written
              tabindex={0}
              data-step={node.id}
              data-state={node.step.state}
              aria-pressed={selected === node.id}
              {...(expanded === undefined ? {} : { "aria-expanded": expanded })}
              aria-label={`${node.id}, ${kindLabel(node)}, ${look.label}${summary ? `: ${summary}` : ""}`}
              onClick={() => activate(node)}
              onKeyDown={(event) => {
                if (event.key === "Enter" || event.key === " ") {
                  event.preventDefault();
                  activate(node);
                }
              }}
            >
              <title>{`${node.id}: ${look.label}${summary ? ` (${summary})` : ""}`}</title>
              <Shape node={node} />
              <text class="icon" x={14} y={31}>
                {look.icon}
              </text>
              <text class="name" x={34} y={22}>
                {node.id.length > 18 ? `${node.id.slice(0, 17)}…` : node.id}
              </text>
              <text class="sub" x={34} y={40}>
                {node.step.kind === "map"
                  ? `${node.childCount} children ${expanded ? "▾" : "▸"}`
                  : node.step.kind === "run"
                    ? look.label
                    : `${node.step.kind === "parallel" ? "parallel" : "gate"} · ${look.label}`}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}
