export * from './table.js';
export * from './token-bucket.js';
