// planVmAddresses against the embedded lookup's DirectoryStore (the lab's real store), as two nodes'
// agents would call it.
import { CniError } from '../cni/types.js';
import { silentLogger } from '../log/log.js';
import { addressHolders } from '../ipam/reservations.js';
import type { AddressReservation, LookupService, VmOwner } from '../lookup/port.js';
import { DirectoryStore } from '../lookup/store.js';
import { planVmAddresses } from './vm-address.js';

const log = silentLogger;
const vm = { namespace: 'vms', name: 'db-0' };
const owner: VmOwner = { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', name: 'db-0', uid: 'u1' };

function lookupOf(store: DirectoryStore): Pick<LookupService, 'addressReservation' | 'reserveAddresses'> {
  return {
    addressReservation: async (v, n) => store.addressReservation(v, n),
    reserveAddresses: async (r, o) => store.reserveAddresses(r, o),
  };
}

const plan = (
  store: DirectoryStore,
  o: { requested?: string[]; owner?: VmOwner; reservations?: AddressReservation[] } = {},
) =>
  planVmAddresses({
    lookup: lookupOf(store),
    vm,
    owner: o.owner ?? owner,
    network: 'blue',
    requested: o.requested,
    holders: addressHolders([{ name: 'blue' }], o.reservations ?? store.snapshot().reservations ?? []),
    log,
  });

describe('planVmAddresses', () => {
  it('reserves what the first ADD got, and gives it back to the next ADD (a restart, any node)', async () => {
    const store = new DirectoryStore();
    const first = await plan(store);
    expect(first.ips).toBeUndefined(); // castnet IPAM allocates
    await first.reserve!(['10.0.1.5/16']);
    expect(store.addressReservation(vm, 'blue')).toMatchObject({ ips: ['10.0.1.5'], ownerUid: 'u1' });
    const again = await plan(store);
    expect(again).toEqual({ ips: ['10.0.1.5'] }); // nothing to write
  });

  it('refuses the second of two ADDs that reserved different addresses at the same moment', async () => {
    const store = new DirectoryStore();
    const [a, b] = [await plan(store), await plan(store)];
    await a.reserve!(['10.0.1.5/16']);
    const refused = b.reserve!(['10.0.2.9/16']);
    await expect(refused).rejects.toBeInstanceOf(CniError);
    await expect(refused).rejects.toThrow(
      'address reservation of VM vms/db-0 on network "blue": another node reserved 10.0.1.5 for it at the same moment; this ADD got 10.0.2.9 and is refused, its retry gets the reserved addresses',
    );
    expect(store.addressReservation(vm, 'blue')!.ips).toEqual(['10.0.1.5']);
  });

  it('lets runtimeConfig.ips win, and the reservation follows it', async () => {
    const store = new DirectoryStore();
    store.reserveAddresses({ network: 'blue', vm, ips: ['10.0.1.5'] }, { owner });
    const p = await plan(store, { requested: ['10.0.3.3/16'] });
    expect(p.ips).toEqual(['10.0.3.3/16']);
    await p.reserve!(['10.0.3.3/16']);
    expect(store.addressReservation(vm, 'blue')!.ips).toEqual(['10.0.3.3']);
  });

  it('replaces the reservation of a deleted VM of the same name (another owner UID)', async () => {
    const store = new DirectoryStore();
    store.reserveAddresses({ network: 'blue', vm, ips: ['10.0.1.5'] }, { owner: { ...owner, uid: 'old' } });
    const p = await plan(store);
    expect(p.ips).toBeUndefined();
    await p.reserve!(['10.0.1.6/16']);
    expect(store.addressReservation(vm, 'blue')).toMatchObject({ ips: ['10.0.1.6'], ownerUid: 'u1' });
  });

  it('does not give back an address an older reservation of another VM holds', async () => {
    const store = new DirectoryStore();
    store.reserveAddresses({ network: 'blue', vm, ips: ['10.0.1.5'] }, { owner });
    const older: AddressReservation = {
      network: 'blue',
      vm: { namespace: 'x', name: 'y' },
      ips: ['10.0.1.5'],
      createdAt: 0,
    };
    const p = await plan(store, { reservations: [older, store.addressReservation(vm, 'blue')!] });
    expect(p.ips).toBeUndefined();
    expect(p.reserve).toBeDefined();
  });

  it("does not give back addresses outside the network's subnets (the network was changed)", async () => {
    const store = new DirectoryStore();
    store.reserveAddresses({ network: 'blue', vm, ips: ['10.0.1.5'] }, { owner });
    const p = await planVmAddresses({
      lookup: lookupOf(store),
      vm,
      owner,
      network: 'blue',
      holders: new Map(),
      subnets: ['10.9.0.0/16'],
      log,
    });
    expect(p.ips).toBeUndefined();
    await p.reserve!(['10.9.1.1/16']);
    expect(store.addressReservation(vm, 'blue')!.ips).toEqual(['10.9.1.1']);
  });

  it('names the reservation when the lookup service cannot be read', async () => {
    await expect(
      planVmAddresses({
        lookup: {
          addressReservation: () => Promise.reject(new Error('apiserver down')),
          reserveAddresses: () => Promise.reject(new Error('unused')),
        },
        vm,
        network: 'blue',
        holders: new Map(),
        log,
      }),
    ).rejects.toThrow('address reservation of VM vms/db-0 on network "blue": cannot be read: apiserver down');
  });
});
