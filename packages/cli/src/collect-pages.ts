/** One page of a paged list answer. */
export interface Page<T> {
  items: T[];
  nextPageToken?: string | undefined;
}

/** Largest page the gateway serves. */
export const maxPageSize = 500;

/**
 * Follows `nextPageToken` from `pageToken` (or the first page) until `limit` items are
 * collected or the list ends, asking each page for no more than is still needed. Returns the
 * items and the token of the page after them (undefined when the list is exhausted).
 */
export async function collectPages<T>(
  fetchPage: (pageSize: number, pageToken: string | undefined) => Promise<Page<T>>,
  limit: number,
  pageToken?: string,
): Promise<Page<T>> {
  const items: T[] = [];
  let token = pageToken;
  for (;;) {
    const wanted = Math.min(maxPageSize, limit - items.length);
    const page = await fetchPage(wanted, token);
    items.push(...page.items.slice(0, wanted));
    token = page.nextPageToken === "" ? undefined : page.nextPageToken;
    if (token === undefined || items.length >= limit || page.items.length === 0)
      return { items, nextPageToken: token };
  }
}
