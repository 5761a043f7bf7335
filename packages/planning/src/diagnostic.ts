import { type ErrorCode, PackrunError } from "@packrun/errors";

/** Where in the YAML source something is; 1-based, 0 when unknown (e.g. a supplied input). */
export interface SourcePosition {
  line: number;
  column: number;
}

/** One problem with a manifest or its inputs. */
export interface Diagnostic extends SourcePosition {
  code: ErrorCode;
  /** Document path, e.g. `spec.steps[2].when`; empty for the document as a whole. */
  path: string;
  message: string;
}

/** Path segments as used to walk the parsed manifest. */
export type DocumentPath = readonly (string | number)[];

const identifier = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** Renders `["spec", "steps", 2, "when"]` as `spec.steps[2].when`. */
export function formatPath(path: DocumentPath): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (identifier.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/** `spec.steps[2].when (line 14:9): message`, the one-line form used in errors and the CLI. */
export function formatDiagnostic(diagnostic: Diagnostic): string {
  const where = diagnostic.path === "" ? "manifest" : diagnostic.path;
  const position = diagnostic.line > 0 ? ` (line ${diagnostic.line}:${diagnostic.column})` : "";
  return `${where}${position}: ${diagnostic.message}`;
}

/** Thrown when a manifest or its inputs are invalid; carries every diagnostic found. */
export class PackValidationError extends PackrunError<{ diagnostics: Diagnostic[] }> {
  readonly diagnostics: Diagnostic[];

  constructor(diagnostics: Diagnostic[]) {
    const first = diagnostics[0];
    const summary = first === undefined ? "invalid manifest" : formatDiagnostic(first);
    const more = diagnostics.length > 1 ? ` (and ${diagnostics.length - 1} more)` : "";
    super(first?.code ?? "PACK_SCHEMA", `${summary}${more}`, { details: { diagnostics } });
    this.name = "PackValidationError";
    this.diagnostics = diagnostics;
  }
}

/** Collects diagnostics during a validation pass. */
export class DiagnosticList {
  readonly items: Diagnostic[] = [];

  add(code: ErrorCode, path: DocumentPath, position: SourcePosition, message: string): void {
    this.items.push({ code, path: formatPath(path), ...position, message });
  }

  /** Throws a {@link PackValidationError} when anything was collected. */
  throwIfAny(): void {
    if (this.items.length > 0) throw new PackValidationError(this.items);
  }
}
