// Classic BPF (SO_ATTACH_FILTER) programs for capture sockets. Pure: encoding only.

/** One `struct sock_filter` instruction. */
export interface BpfInsn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

const BPF_LD_B_ABS = 0x30;
const BPF_JMP_JSET_K = 0x45;
const BPF_RET_K = 0x06;

/**
 * Accepts a frame whose destination MAC has the I/G (group) bit set, i.e. multicast or broadcast,
 * whole; drops everything else. The filter sees the frame from its Ethernet header, without the
 * virtio_net_hdr the socket prepends on read.
 */
export const GROUP_BIT_FILTER: readonly BpfInsn[] = [
  { code: BPF_LD_B_ABS, jt: 0, jf: 0, k: 0 }, // A = dst MAC byte 0
  { code: BPF_JMP_JSET_K, jt: 0, jf: 1, k: 0x01 }, // group bit?
  { code: BPF_RET_K, jt: 0, jf: 0, k: 0xffffffff }, // keep all of it
  { code: BPF_RET_K, jt: 0, jf: 0, k: 0 }, // drop
];

/** The program as the kernel's `struct sock_filter[]` (8 bytes each, host byte order). */
export function encodeFilterProgram(prog: readonly BpfInsn[]): Buffer {
  const out = Buffer.alloc(prog.length * 8);
  prog.forEach((insn, i) => {
    out.writeUInt16LE(insn.code, i * 8);
    out.writeUInt8(insn.jt, i * 8 + 2);
    out.writeUInt8(insn.jf, i * 8 + 3);
    out.writeUInt32LE(insn.k >>> 0, i * 8 + 4);
  });
  return out;
}
