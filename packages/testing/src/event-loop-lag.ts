/**
 * Runs `work` while measuring the longest gap between timer callbacks on this thread: how long
 * this thread's event loop was blocked meanwhile. Resolves with the gap and how `work` settled
 * (its value, or what it threw).
 */
export async function measureEventLoopLag<T>(
  work: Promise<T>,
): Promise<{ lagMs: number; outcome: T | unknown }> {
  let last = performance.now();
  let lagMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    lagMs = Math.max(lagMs, now - last);
    last = now;
  }, 10);
  try {
    const outcome = await work.catch((error: unknown) => error);
    return { lagMs: Math.max(lagMs, performance.now() - last), outcome };
  } finally {
    clearInterval(timer);
  }
}
