export * from './addr';
export * from './build';
export * from './checksum';
export * from './classify';
export * from './ethernet';
export * from './result';
export * from './vnet';
