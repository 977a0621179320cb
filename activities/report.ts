import type { Config } from '../config/schema';
import type { DailySummary } from '../domain/daily-summary';
import { fileStamp } from '../domain/format';
import { dailyReport, weeklyReport, type RunLink, type RunOutcome } from '../domain/report';
import type { WeeklySummary } from '../domain/weekly-summary';
import { storeFileMode } from '../adapters/local/file-mode';
import { Mailer, type Delivery } from '../adapters/mail/mailer';

export interface ReportDeps {
  config: Config;
  now?: () => Date;
}

export type ReportRequest =
  | { job: 'daily'; outcome: RunOutcome<DailySummary>; link: Omit<RunLink, 'uiBaseUrl'>; runLabel: string }
  | { job: 'weekly'; outcome: RunOutcome<WeeklySummary>; link: Omit<RunLink, 'uiBaseUrl'>; runLabel: string };

export function createReportActivities({ config, now = () => new Date() }: ReportDeps) {
  /** Renders the run's report and delivers it (SMTP, or the outbox). Returns where it went and its subject. */
  async function sendReport(request: ReportRequest): Promise<Delivery & { subject: string }> {
    const link = { ...request.link, uiBaseUrl: config.mail.webUiBaseUrl };
    const report =
      request.job === 'daily'
        ? dailyReport(request.outcome, link, request.runLabel)
        : weeklyReport(request.outcome, link, request.runLabel);
    const delivery = await new Mailer(config.mail, storeFileMode(config.permissions)).deliver(
      report,
      `${fileStamp(now())}-${request.link.workflowId}`,
    );
    return { ...delivery, subject: report.subject };
  }
  return { sendReport };
}
