/**
 * The methods each route template answers, so a request for a known path with another method
 * gets 405 and an `Allow` header (RFC 9110 §15.5.6) instead of a 404 that reads as "no such
 * path". Templates use Fastify's syntax (`/api/runs/:id`).
 */
export class AllowedMethods {
  readonly #routes: { pattern: RegExp; method: string }[] = [];

  /** Records one registered route (call it from an `onRoute` hook). */
  add(method: string | readonly string[], url: string): void {
    // `:param` matches one path segment; a trailing slash is ignored, as the router does.
    const source = url
      .replace(/\/+$/, "")
      .split("/")
      .map((segment) =>
        segment.startsWith(":") ? "[^/]+" : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"),
      )
      .join("/");
    const pattern = new RegExp(`^${source}/?$`);
    for (const each of typeof method === "string" ? [method] : method)
      this.#routes.push({ pattern, method: each.toUpperCase() });
  }

  /** The methods `path` (no query string) answers, sorted; empty for an unknown path. */
  for(path: string): string[] {
    const methods = new Set<string>();
    for (const route of this.#routes) if (route.pattern.test(path)) methods.add(route.method);
    return [...methods].sort();
  }
}
