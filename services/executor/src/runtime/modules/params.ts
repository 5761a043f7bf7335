import { z } from "zod";

const envSchema = z.record(z.string(), z.string());
const noNul = (value: string): boolean => !value.includes("\0");

/** `with` of builtin:shell: exactly one of argv or script. */
export const shellParams = z
  .strictObject({
    argv: z.array(z.string().refine(noNul, "must not contain NUL")).min(1).optional(),
    script: z.string().min(1).refine(noNul, "must not contain NUL").optional(),
    env: envSchema.optional(),
    workdir: z.string().optional(),
  })
  .refine((value) => (value.argv === undefined) !== (value.script === undefined), {
    message: "exactly one of argv or script is required",
  });

/** `with` of builtin:container. */
export const containerParams = z.strictObject({
  image: z
    .string()
    .min(1)
    .refine((value) => !value.startsWith("-") && !/\s/.test(value), "is not an image reference"),
  command: z.array(z.string().refine(noNul, "must not contain NUL")).optional(),
  env: envSchema.optional(),
  workdir: z.string().optional(),
});

/** `with` of builtin:bundle.ingest. */
export const bundleIngestParams = z.strictObject({
  path: z.string().min(1),
  sha256: z
    .string()
    .regex(/^(sha256:)?[0-9a-fA-F]{64}$/, "must be 64 hex digits, optionally prefixed by sha256:"),
  filename: z
    .string()
    .regex(/^[^/\\\0]+$/, "must be a plain file name")
    .refine((value) => value !== "." && value !== "..", "must be a plain file name")
    .optional(),
});

/** `with` of builtin:noop. */
export const noopParams = z.strictObject({ message: z.string().optional() });

/** Parses module parameters; on failure, a one-line reason naming the module and each problem. */
export function parseParams<T>(
  module: string,
  schema: z.ZodType<T>,
  input: unknown,
): { ok: true; value: T } | { ok: false; reason: string } {
  const parsed = schema.safeParse(input);
  if (parsed.success) return { ok: true, value: parsed.data };
  const problems = parsed.error.issues.map((issue) => {
    const where = issue.path.length > 0 ? `with.${issue.path.join(".")}` : "with";
    return `${where}: ${issue.message}`;
  });
  return { ok: false, reason: `invalid parameters for ${module}: ${problems.join("; ")}` };
}
