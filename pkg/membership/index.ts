export * from './table';
export * from './token-bucket';
