// The directory the data plane resolves against: the lookup service's view, with this node's own
// endpoints and IGMP/MLD joins replaced by the agent's local truth. A new pod or join works locally at
// once, and keeps working while the lookup service is unreachable. This node's selector memberships
// stay as the lookup service has them: that is where they are evaluated (docs/membership.md).
import type { Directory, EndpointRecord, MembershipRecord } from '../../lookup/port.js';

export function withLocalState(
  d: Directory,
  node: string,
  endpoints: readonly EndpointRecord[],
  memberships: readonly MembershipRecord[],
): Directory {
  return {
    ...d,
    endpoints: [...d.endpoints.filter((e) => e.node !== node), ...endpoints],
    memberships: [...d.memberships.filter((m) => m.node !== node || m.via === 'selector'), ...memberships],
  };
}
