import { DOMParser, XMLSerializer, type Document, type Element } from '@xmldom/xmldom';

/** A disk as libvirt describes it: `<disk type=… device=…>` with its source, target and driver. */
export interface DomainDisk {
  /** Device name inside the VM (vda). */
  target: string;
  /** disk, lun, cdrom, floppy. */
  device: string;
  /** file, block, volume, network, dir, nvme, … (only file and block can be imaged here). */
  type: string;
  /** File or device path (file and block disks). */
  source?: string;
  /** qcow2, raw, … (libvirt's default is raw). */
  format: string;
  readOnly: boolean;
}

/**
 * The one place libvirt XML is parsed. Strict (the default): any error, not only a fatal one, throws
 * `domain XML: …`; lenient: only what xmldom cannot read at all throws (for XML this product wrote itself).
 */
export function parseDocument(xml: string, strict = true): Document {
  const onError = (level: 'warning' | 'error' | 'fatalError', message: string) => {
    if (level !== 'warning') throw new Error(`domain XML: ${message}`);
  };
  return new DOMParser(strict ? { onError } : {}).parseFromString(xml, 'text/xml');
}

/** A new document with the element `root` only (e.g. a snapshot request), to fill in and serialize. */
export function newDocument(root: string): Document {
  return parseDocument(`<${root}/>`);
}

export function serialize(node: Document | Element): string {
  return new XMLSerializer().serializeToString(node);
}

export function parse(xml: string) {
  const doc = parseDocument(xml);
  const domain = doc.documentElement;
  if (!domain || domain.tagName !== 'domain') throw new Error('domain XML: no <domain> element');
  return { doc, domain };
}

export function children(parent: Element, tag: string): Element[] {
  const found: Element[] = [];
  for (let node = parent.firstChild; node; node = node.nextSibling) {
    if (node.nodeType === node.ELEMENT_NODE && (node as Element).tagName === tag) found.push(node as Element);
  }
  return found;
}

/** Every disk of the domain (CD-ROMs and floppies included: the caller decides what to image). */
export function domainDisks(xml: string): DomainDisk[] {
  const { domain } = parse(xml);
  const disks: DomainDisk[] = [];
  for (const devices of children(domain, 'devices')) {
    for (const disk of children(devices, 'disk')) {
      const source = children(disk, 'source')[0];
      const type = disk.getAttribute('type') ?? 'file';
      const path = source?.getAttribute(type === 'block' ? 'dev' : 'file') || undefined;
      disks.push({
        target: children(disk, 'target')[0]?.getAttribute('dev') ?? '',
        device: disk.getAttribute('device') ?? 'disk',
        type,
        ...(path ? { source: path } : {}),
        format: children(disk, 'driver')[0]?.getAttribute('type') || 'raw',
        readOnly: children(disk, 'readonly').length > 0,
      });
    }
  }
  return disks;
}

/**
 * The domain definition without what must not be kept in a backup manifest: disk and network auth
 * (`<auth>`, `<secret>`), encryption keys and graphics passwords.
 */
export function withoutSecrets(xml: string): string {
  const { doc, domain } = parse(xml);
  for (const tag of ['auth', 'secret', 'encryption']) {
    const found = domain.getElementsByTagName(tag);
    for (let i = found.length - 1; i >= 0; i--) found[i]!.parentNode?.removeChild(found[i]!);
  }
  const graphics = domain.getElementsByTagName('graphics');
  for (let i = 0; i < graphics.length; i++) graphics[i]!.removeAttribute('passwd');
  return serialize(doc);
}
