/** A property of a binding, its methods bound to it: workerd refuses them called on a proxy. */
export function bound(target: object, prop: string | symbol): unknown {
  const v = Reflect.get(target, prop) as unknown;
  return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
}
