export * from './build.js';
export * from './checksum.js';
export * from './classify.js';
export * from './ethernet.js';
export * from './result.js';
export * from './vnet.js';
