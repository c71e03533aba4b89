export * from './format.js';
export * from './mtu.js';
