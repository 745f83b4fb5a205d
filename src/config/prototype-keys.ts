/**
 * Keys that would reach an object's prototype instead of a property when assigned (`obj[key] = v`): no
 * config key or env name may be one of them, in a file or in --set.
 */
const PROTOTYPE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export function isPrototypeKey(key: string): boolean {
  return PROTOTYPE_KEYS.has(key);
}

export const PROTOTYPE_KEY_MESSAGE = 'is not a config key (__proto__, constructor and prototype never are)';
