/**
 * The email report of a run, as data: subject, plain text and HTML. Pure, so that what an operator reads
 * is tested as units; the mailer only delivers it. The daily and the weekly report live in files of their
 * own (daily-report.ts, weekly-report.ts), over what they share (report-layout.ts); the contracts a run
 * hands its report are in run-outcome.ts.
 */
export { dailyReport } from './daily-report';
export { escapeHtml } from './report-html';
export type { Report, ReportContext } from './report-layout';
export { runUrl, type ReportRequest, type RunLink, type RunOutcome } from './run-outcome';
export { weeklyReport } from './weekly-report';
