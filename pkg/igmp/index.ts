export * from './codes';
export * from './parse';
export * from './query';
