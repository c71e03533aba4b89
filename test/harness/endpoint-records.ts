// Endpoint records of network "red" (10.0.0.0/24) for the allowed-address-pair tests: host N has
// MAC 02:00:00:00:00:N and address 10.0.0.N; VIP is the address the pairs share.
import type { EndpointRecord } from '../../pkg/lookup/port.js';

export const VIP = '10.0.0.100';
export const macOf = (host: number) => `02:00:00:00:00:${host.toString(16).padStart(2, '0')}`;
export const ep = (
  node: string,
  id: number,
  host: number,
  extra: Partial<EndpointRecord> = {},
): EndpointRecord => ({
  network: 'red',
  node,
  endpointId: id,
  mac: macOf(host),
  ips: [`10.0.0.${host}`],
  ...extra,
});
