import type { Config } from '../../config/schema';
import type { ResticEnv } from './restic-process';

/** The repository of store.engine restic (default <root>/restic); undefined for the files engine. */
export function resticEnvOf(store: Config['store']): ResticEnv | undefined {
  if (store?.engine !== 'restic' || !store.restic) return undefined;
  return {
    repository: store.restic.repository ?? `${store.root.replace(/\/+$/, '')}/restic`,
    passwordFile: store.restic.passwordFile,
    ...(store.restic.cacheDir ? { cacheDir: store.restic.cacheDir } : {}),
  };
}
