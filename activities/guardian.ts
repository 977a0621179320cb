import { fileStamp, formatDuration } from '../domain/format';
import { escapeHtml, type Report } from '../domain/report';
import type { OverlaysLeft, VmPutBack } from '../domain/guardian';
import type { Delivery } from '../adapters/mail/mailer';
import type { Services } from './services';

export interface GuardianDeps {
  /** The mailer, built once by the worker. */
  services: Pick<Services, 'mailer'>;
  now?: () => Date;
}

export function createGuardianActivities({ services, now = () => new Date() }: GuardianDeps) {
  /** One alert to the weekly job's recipients: a line per VM, then why it happened and what to do. */
  function alert(subject: string, lines: string[], explanation: string[], name: string): Promise<Delivery> {
    const text = [...lines, '', ...explanation].join('\n');
    const report: Report = { job: 'weekly', ok: false, subject, text, html: `<pre>${escapeHtml(text)}</pre>` };
    return services.mailer.deliver(report, `${fileStamp(now())}-${name}`);
  }

  /** Tells the weekly job's recipients which VMs were left down by a run that is gone, and that they run again. */
  async function sendHeldDownAlert(putBack: VmPutBack[]): Promise<Delivery> {
    const names = putBack.map((p) => p.vm).join(', ');
    return alert(
      `[cluster-backup] ALERT VM${putBack.length > 1 ? 's' : ''} left down, started again: ${names}`,
      putBack.map(
        (p) =>
          `${p.vm}: down ${formatDuration(p.downMs)} (since ${p.since}), held by run ${p.heldBy}; ${p.why}; ` +
          (p.running ? 'running again' : `NOT running: ${p.error ?? 'unknown'}`),
      ),
      [
        'A weekly run stopped these VMs and ended without starting them again (terminated, reset, timed out,',
        'or over its downtime budget). The guardian started them. Cancel runs instead of terminating them:',
        'a cancelled run starts its VMs again itself.',
      ],
      'guardian',
    );
  }

  /** Tells the weekly job's recipients which VMs a run left running on overlays, and that they were merged back. */
  async function sendOverlaysMergedAlert(left: OverlaysLeft[]): Promise<Delivery> {
    const names = left.map((l) => l.vm).join(', ');
    const outcome = left.some((l) => l.error) ? 'NOT all merged back' : 'merged back';
    return alert(
      `[cluster-backup] ALERT overlays a run left ${outcome}: ${names}`,
      left.map(
        (l) =>
          `${l.vm}: on overlays left by run ${l.leftBy ?? '(unknown: its lock was released)'}; ` +
          (l.error
            ? `NOT merged: ${l.error} (the guardian tries again on its next run)`
            : `disks ${l.merged.join(', ') || '(none)'} merged back, overlay files deleted: ${l.removed.join(', ') || '(none)'}`),
      ),
      [
        'A weekly run in imaging: overlay mode ended (worker killed, run terminated, libvirtd restarted) while these',
        'VMs ran on overlays over their frozen disks. The VMs kept running; the guardian merged the overlays back',
        "into the disks live. That run's images of these VMs may be missing: see its report; the next run backs",
        'them up again.',
      ],
      'guardian-overlays',
    );
  }

  return { sendHeldDownAlert, sendOverlaysMergedAlert };
}
