import { readFile, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { AdapterError } from '../adapter-error';
import nodemailer, { type SendMailOptions } from 'nodemailer';
import type { MailConfig } from '../../config/schema';
import type { Report } from '../../domain/report-layout';
import { applyFileMode, makeFolders, OWNER_ONLY, type StoreFileMode } from '../local/file-mode';
import { readSecretFile, SecretFileExposedError } from '../local/secret-file';

export interface Delivery {
  via: 'smtp' | 'outbox';
  /** smtp: host:port and recipients; outbox: the .eml file. */
  where: string;
  messageId: string;
}

const FALLBACK_RECIPIENT = 'root@localhost';

function safeFileName(text: string): string {
  return text.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 120);
}

/** Delivers reports by SMTP, or writes them as .eml files into the outbox when no SMTP server is configured. */
export class Mailer {
  constructor(
    private readonly mail: MailConfig,
    private readonly mode: StoreFileMode = OWNER_ONLY,
  ) {}

  recipients(job: Report['job']): string[] {
    const list = this.mail.recipients[job];
    return list.length ? list : [FALLBACK_RECIPIENT];
  }

  async deliver(report: Report, name: string): Promise<Delivery> {
    const message = {
      from: this.mail.from,
      to: this.recipients(report.job),
      subject: report.subject,
      text: report.text,
      html: report.html,
    };
    return this.mail.smtp ? this.sendSmtp(message) : this.writeOutbox(message, name);
  }

  private async sendSmtp(message: SendMailOptions): Promise<Delivery> {
    const smtp = this.mail.smtp!;
    const where = `${smtp.host}:${smtp.port}`;
    const transport = nodemailer.createTransport({
      host: smtp.host,
      port: smtp.port,
      secure: smtp.security === 'implicit-tls',
      requireTLS: smtp.security === 'starttls',
      ignoreTLS: smtp.security === 'none',
      connectionTimeout: 20_000,
      greetingTimeout: 20_000,
      socketTimeout: 60_000,
      ...(smtp.user && smtp.passwordFile
        ? { auth: { user: smtp.user, pass: await this.password(smtp.passwordFile) } }
        : {}),
      ...(smtp.caFile ? { tls: { ca: await readFile(smtp.caFile) } } : {}),
    });
    try {
      const info = await transport.sendMail(message);
      return { via: 'smtp', where: `${where} to ${[message.to].flat().join(', ')}`, messageId: info.messageId };
    } catch (err) {
      const e = err as Error & { code?: string; responseCode?: number; response?: string };
      if (e.code === 'EAUTH') {
        throw new AdapterError(
          `SMTP server ${where} refused the login of ${smtp.user ?? '(no user)'}: ${e.response ?? e.message}. Check the user and the password file.`,
          'auth',
          'MailAuthError',
        );
      }
      // A permanent rejection (5xx) will not pass on retry; anything else (network, 4xx) may.
      const permanent = typeof e.responseCode === 'number' && e.responseCode >= 500;
      throw new AdapterError(
        `sending the report via ${where} failed: ${e.message}`,
        permanent ? 'permanent' : 'transient',
        'MailDeliveryError',
        { cause: err },
      );
    } finally {
      transport.close();
    }
  }

  private async password(file: string): Promise<string> {
    try {
      return (await readSecretFile(file, 'SMTP password file')).toString('utf8').trimEnd();
    } catch (err) {
      if (!(err instanceof SecretFileExposedError)) throw err;
      throw new AdapterError(err.message, 'auth', 'MailAuthError', { cause: err });
    }
  }

  private async writeOutbox(message: SendMailOptions, name: string): Promise<Delivery> {
    const outbox = this.mail.outbox!;
    const transport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
    const info = await transport.sendMail(message);
    await makeFolders(outbox, this.mode);
    const file = join(outbox, `${safeFileName(name)}.eml`);
    // Reports name hosts, paths and failures: as private as the backups themselves.
    await writeFile(`${file}.partial`, info.message as Buffer, { mode: this.mode.fileMode });
    await applyFileMode(`${file}.partial`, this.mode);
    await rename(`${file}.partial`, file);
    return { via: 'outbox', where: file, messageId: info.messageId };
  }
}
