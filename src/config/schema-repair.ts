/**
 * A document that fails the schema still gets the semantic checks (normalise) on its valid parts, so one
 * run reports every problem: a bad duration and a tensor size that does not divide the world together,
 * not one per run. Loaded, like schema-errors.ts, only for a config with problems.
 *
 * Why this shape:
 * - Each rejected value is removed and the validator run again, so ajv's useDefaults puts the schema's
 *   default where it has one. normalise() then reads a document of the types it was written for and
 *   needs no defensive code against "2" or undefined; no second copy of the defaults exists.
 * - A bad item of a list cannot be removed alone (the items after it would be renumbered and every
 *   later problem would name the wrong one): the list goes. An object missing a required key goes too.
 *   Both can leave new errors (a required key removed), hence the rounds.
 * - The stand-in default is not what the user wrote, so a check that reads it would judge a value
 *   nobody wrote ("3 × 1 × 1 = 3" for `tensor: "2"`). The rejected paths go to normalise(), which skips
 *   the checks that read them and drops problems located at or under them.
 */
import type { ErrorObject } from 'ajv/dist/2020.js';
import type { SchemaValidator } from './ajv.js';
import { pointerSegments, rejectedPaths, valueAt } from './schema-errors.js';
import type { PathSegment } from './source.js';

/**
 * A round removes something or ends the loop, and what a removal can newly break encloses it (the object
 * that required the key, the list that held the item): the nesting depth bounds the rounds; this is a cap.
 */
const MAX_ROUNDS = 8;

/**
 * Removes from `doc` (in place) every value `errors` reject and lets the schema's defaults fill the gaps.
 * `rejected`: what the errors reject and what was removed. `checkable`: the document now validates, or
 * lacks only a top-level required key (entrypoint), which normalise() tolerates.
 */
export function withoutRejected(
  doc: Record<string, unknown>,
  validator: SchemaValidator,
  errors: ErrorObject[],
): { rejected: PathSegment[][]; checkable: boolean } {
  const rejected = rejectedPaths(errors);
  let remaining = errors;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    let removedAny = false;
    for (const e of remaining) {
      const removed = removeAt(doc, repairTarget(e));
      if (removed) {
        rejected.push(removed);
        removedAny = true;
      }
    }
    if (validator(doc)) return { rejected, checkable: true };
    remaining = validator.errors ?? [];
    if (!removedAny) break;
  }
  return { rejected, checkable: remaining.every((e) => e.keyword === 'required' && e.instancePath === '') };
}

/** The value to remove for an error; undefined for ajv's inner error of propertyNames (its outer one names the key). */
function repairTarget(e: ErrorObject): PathSegment[] | undefined {
  if ('propertyName' in e) return undefined;
  const path = pointerSegments(e.instancePath);
  switch (e.keyword) {
    case 'additionalProperties':
      return [...path, String(e.params.additionalProperty)];
    case 'propertyNames':
      return [...path, String(e.params.propertyName)];
    default:
      // for `required`, the object that lacks the key
      return path;
  }
}

/** Deletes the value at `path` (the enclosing list instead, for a list item); the path removed, if any. */
function removeAt(doc: Record<string, unknown>, path: PathSegment[] | undefined): PathSegment[] | undefined {
  for (let at = path ?? []; at.length > 0; at = at.slice(0, -1)) {
    const parent = valueAt(doc, at.slice(0, -1));
    if (Array.isArray(parent)) continue;
    const key = String(at[at.length - 1]);
    // gone already, with an enclosing value removed for another error
    if (parent === null || typeof parent !== 'object' || !Object.hasOwn(parent, key)) return undefined;
    delete (parent as Record<string, unknown>)[key];
    return at;
  }
  return undefined; // the document itself is never removed
}
