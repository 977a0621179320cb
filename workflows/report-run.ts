import { workflowInfo } from '@temporalio/workflow';
import type { ReportRequest } from '../domain/report';
import { remoteActivities } from './activity-proxies';
import { sendReportSafely } from './saga/report';

const { sendReport } = remoteActivities({
  startToCloseTimeout: '2 minutes',
  // A mail server that is down for a while still gets the report; each try is visible in the Web UI.
  retry: { initialInterval: '10 seconds', backoffCoefficient: 2, maximumInterval: '10 minutes', maximumAttempts: 8 },
});

/**
 * Sends the run's report from the workflow's finally-path: also after a failure or a cancel, and never
 * changing the run's own result (a report that cannot be sent is logged, not thrown).
 */
export async function reportRun(request: Omit<ReportRequest, 'link'>): Promise<void> {
  const { namespace, workflowId, runId } = workflowInfo();
  await sendReportSafely('the report', () =>
    sendReport({ ...request, link: { namespace, workflowId, runId } } as ReportRequest),
  );
}
