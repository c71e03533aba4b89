export * from './format.js';
export * from './mtu.js';
export * from './siphash.js';
export * from './replay.js';
export * from './pair-key.js';
