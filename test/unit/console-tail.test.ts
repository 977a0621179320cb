import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CONSOLE_LINE_CHARS,
  CONSOLE_LINES,
  CONSOLE_TAIL_BYTES,
  consoleLines,
  matchingConsoleLine,
  wholeLinesOfTail,
} from '../../domain/console-tail';
import { restoreTestLines, type RestoreTestResult } from '../../domain/restore';
import { restoreReport } from '../../domain/restore-report';
import { formatRestoreTest } from '../../scripts/commands/restore';

const failed: RestoreTestResult = {
  vm: 'web',
  stamp: '20261129T050000Z',
  passed: false,
  detail: 'running, but no console line matching /login:/ within 60 s',
  testedAt: '2026-11-29T11:02:13Z',
  console: ['Run /init as init process', 'cbguest: ready (boot 2)'],
};

describe('the console lines a failed boot test quotes', () => {
  it('keeps the last lines, without blank lines, terminal escapes or control characters', () => {
    const tail =
      'ial8250: ttyS0 at I/O 0x3f8\r\n\r\n\x1b[0;32m[  OK  ]\x1b[0m Started\x07 ssh\n\n  cbguest: ready (boot 2)  \n';
    assert.deepEqual(consoleLines(tail), [
      'ial8250: ttyS0 at I/O 0x3f8',
      '[  OK  ] Started  ssh',
      'cbguest: ready (boot 2)',
    ]);
    assert.deepEqual(consoleLines(''), []);
  });

  it('masks what looks like a secret, and says what it was', () => {
    const tail = [
      'cloud-init: password: Hunter2-xyz',
      'root PASSWORD=s3cret and more',
      'api_key = abcdef',
      'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl root@web',
      'Password: ',
      'web login:',
    ].join('\n');
    const lines = consoleLines(tail);
    assert.deepEqual(lines, [
      'cloud-init: password: [masked]',
      'root PASSWORD=[masked] and more',
      'api_key = [masked]',
      'ssh-ed25519 [masked] root@web',
      'Password:',
      'web login:',
    ]);
    for (const secret of ['Hunter2', 's3cret', 'abcdef', 'AAAAC3Nza']) assert.ok(!lines.join('\n').includes(secret));
  });

  it('is bounded: at most CONSOLE_LINES lines of at most CONSOLE_LINE_CHARS characters', () => {
    const tail = Array.from({ length: 50 }, (_, i) => `line ${i} ${'x '.repeat(200)}`).join('\n');
    const lines = consoleLines(tail);
    assert.equal(lines.length, CONSOLE_LINES);
    assert.match(lines[0]!, new RegExp(`^line ${50 - CONSOLE_LINES} `), 'the last lines, not the first');
    assert.ok(lines.every((l) => l.length <= CONSOLE_LINE_CHARS && l.endsWith('…')));
  });

  it('drops the first line of a tail cut mid-line, so a cut secret cannot escape the mask', () => {
    // What `tail -c CONSOLE_TAIL_BYTES+1` gives of a log whose `password: hunter2-x` line began before the tail.
    const rest = '\ncbguest: ready\n';
    const cut = Buffer.from(
      `${'y'.repeat(CONSOLE_TAIL_BYTES + 1 - rest.length - 'sword: hunter2-x'.length)}sword: hunter2-x${rest}`,
    );
    assert.equal(cut.length, CONSOLE_TAIL_BYTES + 1);
    const tail = wholeLinesOfTail(cut);
    assert.deepEqual(consoleLines(tail), ['cbguest: ready']);
    assert.ok(!consoleLines(tail).join('\n').includes('hunter2'));
    // A log no longer than the tail is whole: its first line is kept.
    assert.equal(wholeLinesOfTail(Buffer.from('sword: x\nready\n')), 'sword: x\nready\n');
    // The tail began exactly at a line: only the extra byte (the newline before it) goes.
    const atLine = Buffer.from(`\n${'z'.repeat(CONSOLE_TAIL_BYTES - 1)}\n`);
    assert.equal(wholeLinesOfTail(atLine), `${'z'.repeat(CONSOLE_TAIL_BYTES - 1)}\n`);
    assert.equal(wholeLinesOfTail(Buffer.alloc(CONSOLE_TAIL_BYTES + 1, 0x78)), '', 'one cut line only: nothing');
  });

  it('gives a passed test the matching line cleaned and masked, as a failed test`s lines are', () => {
    const tail = 'booting\n\x1b[1mweb login:\x1b[0m token=abc123 \x07\nlater\n';
    assert.equal(matchingConsoleLine(tail, /login:/m), 'web login: token=[masked]');
    assert.equal(matchingConsoleLine(tail, /nothing/m), undefined);
    assert.ok(matchingConsoleLine(`login: ${'x'.repeat(400)}`, /login:/)!.length <= CONSOLE_LINE_CHARS);
  });

  it('are shown under a failed test by the CLI, status / store verify and the test`s email', () => {
    const quoted = ['  last console lines:', '  | Run /init as init process', '  | cbguest: ready (boot 2)'];
    assert.deepEqual(formatRestoreTest({ ok: false, result: failed, startedAt: '', finishedAt: '' }).split('\n'), [
      `restore test web set 20261129T050000Z: FAILED - ${failed.detail}`,
      ...quoted,
    ]);
    assert.deepEqual(restoreTestLines({ web: failed }), [
      `restore test "web" set 20261129T050000Z: FAILED at 2026-11-29T11:02:13Z (${failed.detail})`,
      ...quoted,
    ]);
    const mail = restoreReport({
      kind: 'test',
      result: { ok: false, result: failed, startedAt: '', finishedAt: '' },
      link: { namespace: 'default', workflowId: 'restore-test-web', runId: 'r1' },
    });
    assert.match(
      mail.text,
      /: FAILED - .*\.\nlast console lines:\n\| Run \/init as init process\n\| cbguest: ready \(boot 2\)\n/,
    );
    assert.match(mail.html, /<p>\| cbguest: ready \(boot 2\)<\/p>/);
    // A passed test quotes nothing.
    const passed = { ...failed, passed: true, detail: 'running, console: web login:', console: undefined };
    assert.deepEqual(restoreTestLines({ web: passed }).length, 1);
  });
});
