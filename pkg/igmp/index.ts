export * from './codes.js';
export * from './parse.js';
export * from './query.js';
