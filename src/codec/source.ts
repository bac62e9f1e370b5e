/** Run sources: validate and normalise base URLs, build archive URLs inside them, and redact their secrets for display. */

/** Longest source accepted, in characters (as given, and once normalised). */
export const MAX_SOURCE_LENGTH = 2048;

export type ParsedSource = { ok: true; source: string } | { ok: false; error: string };

/**
 * A run's source: an http(s) URL of at most MAX_SOURCE_LENGTH characters with
 * no fragment, normalised to `new URL`'s canonical form (lower-case scheme and
 * host, default port dropped, percent-encoding applied) with the path's
 * trailing slashes removed — a bare host is `http://h`, whether given with a
 * slash or not — and the query string kept.
 */
export function parseSource(raw: string): ParsedSource {
  if (raw.length > MAX_SOURCE_LENGTH) {
    return { ok: false, error: `source must be at most ${MAX_SOURCE_LENGTH} characters, got ${raw.length}` };
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, error: `source is not a URL: ${JSON.stringify(raw)}` };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return { ok: false, error: `source must be an http(s) URL, got ${url.protocol}` };
  }
  // Any "#" starts a fragment (a literal one would be %23), even an empty one.
  if (raw.includes("#")) return { ok: false, error: "source must not have a #fragment" };
  const userinfo =
    url.username !== "" || url.password !== ""
      ? `${url.username}${url.password !== "" ? `:${url.password}` : ""}@`
      : "";
  const source = `${url.protocol}//${userinfo}${url.host}${url.pathname.replace(/\/+$/, "")}${url.search}`;
  if (source.length > MAX_SOURCE_LENGTH) {
    return {
      ok: false,
      error: `source must be at most ${MAX_SOURCE_LENGTH} characters, got ${source.length} once normalised`,
    };
  }
  return { ok: true, source };
}

/** Whether two sources name the same place once normalised (an invalid one only equals itself). */
export function sameSource(a: string, b: string): boolean {
  const norm = (s: string) => {
    const p = parseSource(s);
    return p.ok ? p.source : s;
  };
  return norm(a) === norm(b);
}

/** The URL of `file` inside the source's path, keeping the source's query string. */
export function archiveUrl(source: string, file: string): string {
  let url: URL;
  try {
    url = new URL(source);
  } catch {
    return `${source.replace(/\/+$/, "")}/${encodeURIComponent(file)}`;
  }
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/${encodeURIComponent(file)}`;
  url.hash = "";
  return url.href;
}

const HIDDEN = "***";

/** Trailing characters that end a sentence rather than a URL in free text. */
const TRAILING = /[.,;:!?)\]}'"]+$/;

/** Redact one URL known to start with `scheme://`. */
function redactOne(url: string): string {
  const start = url.indexOf("//") + 2;
  const rest = url.slice(start);
  let end = rest.search(/[/?#]/);
  if (end < 0) end = rest.length;
  const authority = rest.slice(0, end);
  const at = authority.lastIndexOf("@");
  let out = url.slice(0, start) + (at >= 0 ? `${HIDDEN}@${authority.slice(at + 1)}` : authority);
  let tail = rest.slice(end);
  const hash = tail.indexOf("#");
  const fragment = hash >= 0 ? tail.slice(hash + 1) : undefined;
  if (hash >= 0) tail = tail.slice(0, hash);
  const q = tail.indexOf("?");
  if (q >= 0) {
    const query = tail
      .slice(q + 1)
      .split("&")
      .map((param) => {
        if (param === "") return param;
        const eq = param.indexOf("=");
        // A parameter without "=" may itself be the secret.
        return eq >= 0 ? `${param.slice(0, eq)}=${HIDDEN}` : HIDDEN;
      })
      .join("&");
    tail = `${tail.slice(0, q)}?${query}`;
  }
  out += tail;
  if (fragment !== undefined) out += fragment === "" ? "#" : `#${HIDDEN}`;
  return out;
}

// Up to whitespace: a canonical URL has none, while quotes and brackets may be in a password.
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/\S*/gi;

/**
 * A URL for display: userinfo becomes `***` (`http://***@h`), every query
 * parameter's value becomes `***` (a parameter with no `=` entirely), as does
 * a fragment; scheme, host, port and path are kept.
 */
export function redactUrl(url: string): string {
  return /^[a-z][a-z0-9+.-]*:\/\/\S*$/i.test(url) ? redactOne(url) : redactText(url);
}

/** Free text (an error message) with every `scheme://…` URL in it redacted as redactUrl does. */
export function redactText(text: string): string {
  return text.replace(URL_IN_TEXT, (match) => {
    // Punctuation after a query or fragment may be part of a secret: it stays in the redacted part.
    const trail = /[?#]/.test(match) ? "" : (TRAILING.exec(match)?.[0] ?? "");
    const url = match.slice(0, match.length - trail.length);
    return redactOne(url) + trail;
  });
}
