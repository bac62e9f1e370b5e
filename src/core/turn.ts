/**
 * A timer's turn. Locally, workerd serves the Worker, D1, R2 and the queue
 * broker on one event loop and takes new connections only when nothing else is
 * ready: a chain of awaits answered inside the process (D1 calls, R2 puts,
 * queue sends) keeps every request waiting until it ends. Waiting on a timer
 * empties the loop for a moment. In production it costs one turn.
 */
export const nextTurn = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));
