export * from './address-pairs.js';
export * from './directory-index.js';
export * from './groups.js';
export * from './resolve.js';
export * from './nesting.js';
export * from './tenancy.js';
