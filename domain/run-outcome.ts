/**
 * The contracts between a run and its report: how a run ended (its outcome), where it can be looked at
 * (its link), and what a workflow's finally-path hands the report activity. Renderers, the trend, the
 * metrics and the past-runs reader all speak these.
 */
import type { DailySummary } from './daily-summary';
import type { WeeklySummary } from './weekly-summary';

export type RunOutcome<S> =
  | { state: 'completed'; summary: S }
  | { state: 'failed'; error: string; summary?: S }
  | { state: 'cancelled'; summary?: S };

export interface RunLink {
  namespace: string;
  workflowId: string;
  runId: string;
  /** e.g. http://backup-host:8233; without it the report names the workflow but links nowhere. */
  uiBaseUrl?: string;
}

/** What a workflow's finally-path hands the report activity. */
export type ReportRequest =
  | { job: 'daily'; outcome: RunOutcome<DailySummary>; link: Omit<RunLink, 'uiBaseUrl'>; runLabel: string }
  | { job: 'weekly'; outcome: RunOutcome<WeeklySummary>; link: Omit<RunLink, 'uiBaseUrl'>; runLabel: string };

export function runUrl(link: RunLink): string | undefined {
  if (!link.uiBaseUrl) return undefined;
  const base = link.uiBaseUrl.replace(/\/+$/, '');
  return `${base}/namespaces/${encodeURIComponent(link.namespace)}/workflows/${encodeURIComponent(link.workflowId)}/${encodeURIComponent(link.runId)}/history`;
}
