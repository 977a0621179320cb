import type { Config } from '../config/schema';
import { fileStamp, formatDuration } from '../domain/format';
import { escapeHtml, type Report } from '../domain/report';
import type { VmPutBack } from '../domain/guardian';
import { Mailer, type Delivery } from '../adapters/mail/mailer';

export interface GuardianDeps {
  config: Config;
  now?: () => Date;
}

export function createGuardianActivities({ config, now = () => new Date() }: GuardianDeps) {
  /** Tells the weekly job's recipients which VMs were left down by a run that is gone, and that they run again. */
  async function sendHeldDownAlert(putBack: VmPutBack[]): Promise<Delivery> {
    const names = putBack.map((p) => p.vm).join(', ');
    const subject = `[cluster-backup] ALERT VM${putBack.length > 1 ? 's' : ''} left down, started again: ${names}`;
    const lines = putBack.map(
      (p) =>
        `${p.vm}: down ${formatDuration(p.downMs)} (since ${p.since}), held by run ${p.heldBy}; ${p.why}; ` +
        (p.running ? 'running again' : `NOT running: ${p.error ?? 'unknown'}`),
    );
    const text = [
      ...lines,
      '',
      'A weekly run stopped these VMs and ended without starting them again (terminated, reset, timed out,',
      'or over its downtime budget). The guardian started them. Cancel runs instead of terminating them:',
      'a cancelled run starts its VMs again itself.',
    ].join('\n');
    const report: Report = { job: 'weekly', ok: false, subject, text, html: `<pre>${escapeHtml(text)}</pre>` };
    return new Mailer(config.mail).deliver(report, `${fileStamp(now())}-guardian`);
  }

  return { sendHeldDownAlert };
}
