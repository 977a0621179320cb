import { ActivityFailure, ApplicationFailure } from '@temporalio/workflow';

/** The innermost failure's message, with the remote command's stderr when it says more. */
export function failureText(err: unknown): string {
  let e: unknown = err;
  while (e instanceof ActivityFailure && e.cause) e = e.cause;
  if (e instanceof ApplicationFailure) {
    const stderr = (e.details?.[0] as { stderr?: string } | undefined)?.stderr?.trim();
    if (stderr && !e.message.includes(stderr)) return `${e.message} (stderr: ${stderr.slice(0, 500)})`;
  }
  return e instanceof Error ? e.message : String(e);
}
