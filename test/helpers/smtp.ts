import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface TestSmtpServer {
  port: number;
  /** PEM certificate the server presents for STARTTLS (self-signed for 127.0.0.1). */
  certFile: string;
  messages: (ParsedMail & { envelopeTo: string[] })[];
  stop(): Promise<void>;
}

/** A real SMTP server (npm smtp-server) on 127.0.0.1 with STARTTLS and, optionally, required AUTH. */
export async function startSmtpServer(dir: string, auth?: { user: string; pass: string }): Promise<TestSmtpServer> {
  const keyFile = join(dir, 'smtp.key');
  const certFile = join(dir, 'smtp.crt');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
  const messages: TestSmtpServer['messages'] = [];
  const server = new SMTPServer({
    key: readFileSync(keyFile),
    cert: readFileSync(certFile),
    authOptional: !auth,
    disabledCommands: auth ? [] : ['AUTH'],
    logger: false,
    onAuth(credentials, _session, callback) {
      if (auth && credentials.username === auth.user && credentials.password === auth.pass)
        return callback(null, { user: auth.user });
      return callback(new Error('Invalid username or password'));
    },
    onData(stream, session, callback) {
      simpleParser(stream).then(
        (parsed) => {
          messages.push(Object.assign(parsed, { envelopeTo: session.envelope.rcptTo.map((r) => r.address) }));
          callback();
        },
        (err: Error) => callback(err),
      );
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.server.address();
  if (typeof address !== 'object' || !address) throw new Error('SMTP server has no port');
  return {
    port: address.port,
    certFile,
    messages,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
