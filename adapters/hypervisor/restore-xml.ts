import { randomBytes } from 'node:crypto';
import type { Document, Element } from '@xmldom/xmldom';
import { parseDocument, serialize } from './domain-xml';
import type { RestoreNetwork } from '../../domain/restore';

export interface RestoredDisk {
  /** Device name inside the VM (vda): which `<disk>` of the saved XML. */
  target: string;
  /** The restored image on the hypervisor. */
  path: string;
  format: string;
}

export interface RestoreXmlOptions {
  name: string;
  uuid: string;
  disks: RestoredDisk[];
  network: RestoreNetwork;
  /** Folder on the hypervisor for the file-backed serial consoles and logs the copy writes. */
  consoleDir: string;
  /** A hard cap on memory (MiB), for throw-away boot tests. */
  memoryMiB?: number;
  /** A description recorded in the domain (where it was restored from). */
  description?: string;
  /** For tests: a fixed source of MAC addresses. */
  newMac?: () => string;
}

/** A copy's definition, and what of the saved one it left out because it ties a domain to the host. */
export interface RestoredDomain {
  xml: string;
  /** One line per device left out, e.g. `<filesystem> type=mount, source dir=/srv/share, target dir=share`. */
  removed: string[];
}

export class RestoreXmlError extends Error {
  override name = 'RestoreXmlError';
}

/** A locally administered address in QEMU's 52:54:00 range, as libvirt would generate. */
export function randomMac(): string {
  return ['52', '54', '00', ...[...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

function elements(parent: Document | Element, tag: string): Element[] {
  return Array.from(parent.getElementsByTagName(tag));
}

/** The child elements named `tag` (every one with `*`), as getElementsByTagName without the grandchildren. */
function directChildren(parent: Element, tag: string): Element[] {
  return Array.from(parent.childNodes).filter(
    (n): n is Element => n.nodeType === 1 && (tag === '*' || n.nodeName === tag),
  );
}

function firstChild(parent: Element, tag: string): Element | undefined {
  return directChildren(parent, tag)[0];
}

function setText(doc: Document, parent: Element, tag: string, text: string): void {
  let node = firstChild(parent, tag);
  if (!node) {
    node = doc.createElement(tag);
    parent.appendChild(node);
  }
  while (node.firstChild) node.removeChild(node.firstChild);
  node.appendChild(doc.createTextNode(text));
}

function remove(node: Element): void {
  node.parentNode?.removeChild(node);
}

/**
 * Devices bound to the host's live resources rather than to the VM's disks: a host folder shared into the
 * guest, a passed-through PCI/USB/SCSI device (or network function), USB redirection, a smartcard, memory
 * shared with other domains, NVDIMM or virtio-pmem memory backed by a host file, the host's TPM, input or
 * serial device, and character devices (serial, console, channel, parallel) on a host pipe, a fixed TCP or
 * UDP port or a fixed Unix socket path. A copy that kept them would mount the live folder read-write, take
 * the device from the original, write into its memory file, or bind or connect to the original's sockets.
 */
function hostBound(device: Element): boolean {
  const type = device.getAttribute('type');
  switch (device.nodeName) {
    case 'filesystem':
    case 'hostdev':
    case 'redirdev':
    case 'smartcard':
    case 'shmem':
      return true;
    case 'interface':
      return type === 'hostdev';
    case 'tpm':
      return directChildren(device, 'backend').some((b) => b.getAttribute('type') === 'passthrough');
    case 'input':
      return type === 'passthrough' || type === 'evdev';
    case 'memory':
      return directChildren(device, 'source').some((source) => firstChild(source, 'path') !== undefined);
    case 'serial':
    case 'parallel':
    case 'console':
    case 'channel':
      return (
        type === 'dev' ||
        type === 'pipe' ||
        type === 'tcp' ||
        type === 'udp' ||
        (type === 'unix' && directChildren(device, 'source').some((source) => source.hasAttribute('path')))
      );
    default:
      return false;
  }
}

/**
 * A device in one line, for the restore's result and report: its attributes, its source's (and what its
 * source's elements say) and target's. Called after the secrets are stripped (no auth, no passwd).
 */
function describeDevice(device: Element): string {
  const attributes = (e: Element | undefined, prefix = '') =>
    e ? Array.from(e.attributes).map((a) => `${prefix}${a.name}=${a.value}`) : [];
  const text = (e: Element, prefix: string) =>
    directChildren(e, '*').length === 0 && e.textContent?.trim() ? [`${prefix}=${e.textContent.trim()}`] : [];
  const source = firstChild(device, 'source');
  const details = [
    ...attributes(device),
    ...attributes(source, 'source '),
    ...(source
      ? elements(source, '*').flatMap((e) => [
          ...attributes(e, `source ${e.nodeName} `),
          ...text(e, `source ${e.nodeName}`),
        ])
      : []),
    ...attributes(firstChild(device, 'target'), 'target '),
  ];
  return `<${device.nodeName}> ${details.join(', ')}`.trimEnd();
}

/**
 * The saved definition of a VM (`virsh dumpxml --inactive`) turned into a new domain that cannot clash with
 * the original: new name and UUID, new MAC addresses, the restored images as its disks, network interfaces
 * removed or with their link down (unless kept), file-backed consoles moved next to the restored disks,
 * devices tied to the host left out (see hostBound; listed in `removed`), a fixed vsock address made
 * automatic, and anything secret (passwords, auth references) stripped. A disk of the saved XML with no restored image is refused: the copy would
 * otherwise write into the original's disk.
 */
export function restoredDomainXml(savedXml: string, options: RestoreXmlOptions): RestoredDomain {
  let doc: Document;
  try {
    doc = parseDocument(savedXml, false);
  } catch (err) {
    throw new RestoreXmlError(`the saved domain XML does not parse: ${(err as Error).message}`);
  }
  const domain = doc.documentElement;
  if (!domain || domain.nodeName !== 'domain') throw new RestoreXmlError('the saved XML is not a <domain>');
  const newMac = options.newMac ?? randomMac;

  setText(doc, domain, 'name', options.name);
  setText(doc, domain, 'uuid', options.uuid);
  if (options.description !== undefined) setText(doc, domain, 'description', options.description);
  // Bound to the original domain's identity or host state.
  for (const tag of ['genid', 'metadata']) for (const e of directChildren(domain, tag)) remove(e);

  if (options.memoryMiB !== undefined) {
    for (const tag of ['memory', 'currentMemory']) {
      const e = firstChild(domain, tag);
      if (!e) continue;
      e.setAttribute('unit', 'MiB');
      while (e.firstChild) e.removeChild(e.firstChild);
      e.appendChild(doc.createTextNode(String(options.memoryMiB)));
    }
    for (const e of directChildren(domain, 'maxMemory')) remove(e);
  }

  // Secrets first (so no description of a removed device holds one): graphics passwords and storage auth
  // references (with their usernames and secret usages) never travel into the copy.
  for (const e of elements(domain, '*')) if (e.hasAttribute('passwd')) e.removeAttribute('passwd');
  for (const auth of elements(domain, 'auth')) remove(auth);

  const devices = firstChild(domain, 'devices');
  const removed: string[] = [];
  for (const device of devices ? directChildren(devices, '*') : []) {
    if (!hostBound(device)) continue;
    removed.push(describeDevice(device));
    remove(device);
  }
  const wanted = new Map(options.disks.map((d) => [d.target, d]));
  const placed = new Set<string>();
  for (const disk of devices ? directChildren(devices, 'disk') : []) {
    const device = disk.getAttribute('device') ?? 'disk';
    const target = firstChild(disk, 'target')?.getAttribute('dev') ?? '';
    const restored = wanted.get(target);
    if (!restored) {
      if (device === 'cdrom' || device === 'floppy') continue; // read-only media: shared without harm
      throw new RestoreXmlError(`disk ${JSON.stringify(target)} of the saved domain has no image in the set`);
    }
    disk.setAttribute('type', 'file');
    for (const e of [...directChildren(disk, 'source'), ...directChildren(disk, 'backingStore')]) remove(e);
    const source = doc.createElement('source');
    source.setAttribute('file', restored.path);
    disk.insertBefore(source, disk.firstChild);
    let driver = firstChild(disk, 'driver');
    if (!driver) {
      driver = doc.createElement('driver');
      disk.insertBefore(driver, disk.firstChild);
    }
    if (!driver.getAttribute('name')) driver.setAttribute('name', 'qemu');
    driver.setAttribute('type', restored.format);
    placed.add(target);
  }
  const missing = options.disks.filter((d) => !placed.has(d.target));
  if (missing.length) {
    throw new RestoreXmlError(
      `the saved domain has no disk ${missing.map((d) => JSON.stringify(d.target)).join(', ')}`,
    );
  }

  for (const iface of devices ? directChildren(devices, 'interface') : []) {
    if (options.network === 'remove') {
      remove(iface);
      continue;
    }
    for (const mac of directChildren(iface, 'mac')) remove(mac);
    const mac = doc.createElement('mac');
    mac.setAttribute('address', newMac());
    iface.insertBefore(mac, iface.firstChild);
    if (options.network === 'link-down') {
      for (const link of directChildren(iface, 'link')) remove(link);
      const link = doc.createElement('link');
      link.setAttribute('state', 'down');
      iface.appendChild(link);
    }
  }

  // File-backed consoles and logs: each original path gets its own new one (a serial and a console often
  // share a file), so the copy never appends to the original's logs.
  const renamed = new Map<string, string>();
  const newPath = (old: string) => {
    if (!renamed.has(old)) renamed.set(old, `${options.consoleDir}/console-${renamed.size}.log`);
    return renamed.get(old)!;
  };
  for (const tag of ['serial', 'console', 'channel', 'parallel']) {
    for (const device of devices ? directChildren(devices, tag) : []) {
      if (device.getAttribute('type') === 'file') {
        const source = firstChild(device, 'source');
        const path = source?.getAttribute('path');
        if (source && path) source.setAttribute('path', newPath(path));
      }
      for (const log of directChildren(device, 'log')) {
        const file = log.getAttribute('file');
        if (file) log.setAttribute('file', newPath(file));
      }
    }
  }

  // A fixed vsock address is the original's: the copy gets one of its own from libvirt.
  for (const cid of devices ? directChildren(devices, 'vsock').flatMap((v) => directChildren(v, 'cid')) : []) {
    cid.setAttribute('auto', 'yes');
    cid.removeAttribute('address');
  }

  return { xml: serialize(doc), removed };
}

/**
 * The throw-away definition of a boot test: a copy as restoredDomainXml makes it (nothing tied to the host),
 * with no network at all and only a serial console to read.
 */
export function bootProbeXml(savedXml: string, options: Omit<RestoreXmlOptions, 'network'>, consoleLog: string) {
  const { xml } = restoredDomainXml(savedXml, { ...options, network: 'remove' });
  const doc = parseDocument(xml, false);
  const devices = firstChild(doc.documentElement!, 'devices');
  if (!devices) throw new RestoreXmlError('the saved domain has no <devices>');
  for (const tag of ['serial', 'console', 'channel']) for (const e of directChildren(devices, tag)) remove(e);
  const serial = doc.createElement('serial');
  serial.setAttribute('type', 'file');
  const source = doc.createElement('source');
  source.setAttribute('path', consoleLog);
  const target = doc.createElement('target');
  target.setAttribute('port', '0');
  serial.appendChild(source);
  serial.appendChild(target);
  devices.appendChild(serial);
  // A guest that powers off or crashes ends the test at once instead of rebooting into another try.
  for (const [tag, value] of [
    ['on_poweroff', 'destroy'],
    ['on_reboot', 'destroy'],
    ['on_crash', 'destroy'],
  ] as const)
    setText(doc, doc.documentElement!, tag, value);
  return serialize(doc);
}

/** The domain's name and disks as the XML says, for checks in tests and before a define. */
export function domainSummary(xml: string): { name: string; uuid: string; interfaces: number; disks: RestoredDisk[] } {
  const doc = parseDocument(xml, false);
  const domain = doc.documentElement!;
  return {
    name: firstChild(domain, 'name')?.textContent ?? '',
    uuid: firstChild(domain, 'uuid')?.textContent ?? '',
    interfaces: elements(domain, 'interface').length,
    disks: elements(domain, 'disk').map((d) => ({
      target: firstChild(d, 'target')?.getAttribute('dev') ?? '',
      path: firstChild(d, 'source')?.getAttribute('file') ?? '',
      format: firstChild(d, 'driver')?.getAttribute('type') ?? '',
    })),
  };
}

/** The files a domain's file-backed consoles and character-device logs write to (created before it starts). */
export function consoleFiles(xml: string): string[] {
  const devices = firstChild(parseDocument(xml, false).documentElement!, 'devices');
  const files = new Set<string>();
  for (const tag of ['serial', 'console', 'channel', 'parallel']) {
    for (const device of devices ? directChildren(devices, tag) : []) {
      const path = device.getAttribute('type') === 'file' ? firstChild(device, 'source')?.getAttribute('path') : '';
      if (path) files.add(path);
      for (const log of directChildren(device, 'log'))
        if (log.getAttribute('file')) files.add(log.getAttribute('file')!);
    }
  }
  return [...files];
}
