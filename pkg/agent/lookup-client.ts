// Chooses the lookup service adapter from the agent's --lookup flag.
import type { LookupService } from '../lookup/port';
import { EmbeddedLookupClient } from '../lookup/embedded/client';

export function connectLookup(spec: string): LookupService {
  if (spec.startsWith('unix:')) return new EmbeddedLookupClient(spec.slice('unix:'.length));
  throw new Error(`--lookup: ${JSON.stringify(spec)} must be unix:PATH (the embedded lookup service)`);
}
