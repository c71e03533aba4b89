// MAC address text: the forms CNI users write, and castnet's canonical form.

const MAC_PATTERN = /^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/i;

/** `02:00:00:00:00:01` for a unicast MAC in colon or hyphen notation; undefined otherwise. */
export function normalizeUnicastMac(text: string): string | undefined {
  if (!MAC_PATTERN.test(text)) return undefined;
  const mac = text.toLowerCase().replace(/-/g, ':');
  const firstOctet = parseInt(mac.slice(0, 2), 16);
  if (firstOctet & 1 || mac === '00:00:00:00:00:00') return undefined;
  return mac;
}
