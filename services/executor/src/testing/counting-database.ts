import type { Database, Queryable, Transaction } from "@packrun/db";

/** One statement a {@link countingDatabase} saw, with its parameters and transaction. */
export interface SeenStatement {
  text: string;
  params: readonly unknown[];
  /** Set for statements inside a transaction (BEGIN and COMMIT included). */
  transaction?: number;
}

/**
 * Wraps a database so that every statement (and the BEGIN and COMMIT of every transaction) is
 * recorded in `seen`: for tests that bound how many round trips something costs.
 */
export function countingDatabase(database: Database): Database & { seen: SeenStatement[] } {
  const seen: SeenStatement[] = [];
  let transactions = 0;
  const counted = (target: Queryable, transaction?: number): Queryable["query"] =>
    ((text: string, params: unknown[] = []) => {
      seen.push({ text, params, ...(transaction === undefined ? {} : { transaction }) });
      return target.query(text, params);
    }) as Queryable["query"];
  return {
    seen,
    query: counted(database),
    transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T> {
      const id = ++transactions;
      seen.push({ text: "BEGIN", params: [], transaction: id });
      return database
        .transaction((tx) =>
          work({ query: counted(tx, id), beforeCommit: (task) => tx.beforeCommit(task) }),
        )
        .finally(() => seen.push({ text: "COMMIT", params: [], transaction: id }));
    },
    close: () => database.close(),
  };
}

/**
 * The statements of `seen` that concern run `runId`: those with the run's id among their
 * parameters, with the BEGIN and COMMIT of their transactions.
 */
export function statementsOfRun(seen: readonly SeenStatement[], runId: string): SeenStatement[] {
  const mentions = (statement: SeenStatement) =>
    statement.params.some((param) => typeof param === "string" && param.includes(runId));
  const transactions = new Set(
    seen.filter(mentions).flatMap((statement) => statement.transaction ?? []),
  );
  return seen.filter(
    (statement) =>
      mentions(statement) ||
      (statement.transaction !== undefined &&
        transactions.has(statement.transaction) &&
        (statement.text === "BEGIN" || statement.text === "COMMIT")),
  );
}
