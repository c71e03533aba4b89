export * from './format';
export * from './mtu';
