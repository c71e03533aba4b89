export * from './directory-index';
export * from './groups';
export * from './resolve';
