/** Sources: parsed and normalised, compared, joined with file names, and redacted for display. */
import { describe, expect, it } from "vitest";
import { archiveUrl, MAX_SOURCE_LENGTH, parseSource, redactText, redactUrl, sameSource } from "../src/codec/source";

const ok = (raw: string) => {
  const p = parseSource(raw);
  if (!p.ok) throw new Error(`refused ${raw}: ${p.error}`);
  return p.source;
};

describe("parseSource", () => {
  it.each([
    ["http://h/p", "http://h/p"],
    ["http://h/p/", "http://h/p"],
    ["http://h/p///", "http://h/p"],
    ["https://h/a/b/", "https://h/a/b"],
    ["http://h", "http://h"],
    ["http://h/", "http://h"],
    ["http://h//", "http://h"],
    ["HTTP://Example.COM/Data/", "http://example.com/Data"],
    ["http://h:80/p", "http://h/p"],
    ["https://h:443/p", "https://h/p"],
    ["http://h:8080/p/", "http://h:8080/p"],
    ["http://127.0.0.1:9/x", "http://127.0.0.1:9/x"],
    ["http://[::1]:8080/p/", "http://[::1]:8080/p"],
    ["http://[2001:DB8::1]/", "http://[2001:db8::1]"],
    ["http://h/a b/", "http://h/a%20b"],
    ["http://h/%7Efoo/%20x", "http://h/%7Efoo/%20x"],
    ["http://h/caf\u00e9", "http://h/caf%C3%A9"],
    ["http://h/p?t=1", "http://h/p?t=1"],
    ["http://h/p/?t=1&u=a/b", "http://h/p?t=1&u=a/b"],
    ["http://h/?t=1", "http://h?t=1"],
    ["http://h/p?", "http://h/p"],
    ["http://user:pass@h/p/", "http://user:pass@h/p"],
    ["http://user@h/p", "http://user@h/p"],
    ["http://:pass@h/p", "http://:pass@h/p"],
    ["  http://h/p  ", "http://h/p"],
  ])("%s is %s", (raw, source) => {
    expect(parseSource(raw)).toEqual({ ok: true, source });
  });

  it("is idempotent, and its form still parses as the same URL", () => {
    for (const raw of ["http://h/p/", "http://[::1]:8080/", "http://u:p@h/a b?x=1", "http://h/?t=1"]) {
      const once = ok(raw);
      expect(ok(once)).toBe(once);
      expect(new URL(once).host).toBe(new URL(raw).host);
    }
  });

  it.each([
    ["fashion", 'source is not a URL: "fashion"'],
    ["", 'source is not a URL: ""'],
    ["http://", 'source is not a URL: "http://"'],
    ["http://[::1/p", 'source is not a URL: "http://[::1/p"'],
    ["file:///etc/passwd", "source must be an http(s) URL, got file:"],
    ["ftp://h/p", "source must be an http(s) URL, got ftp:"],
    ["javascript:alert(1)", "source must be an http(s) URL, got javascript:"],
    ["data:text/plain,x", "source must be an http(s) URL, got data:"],
    ["http://h/p#frag", "source must not have a #fragment"],
    ["http://h/p#", "source must not have a #fragment"],
  ])("%j is refused: %s", (raw, error) => {
    expect(parseSource(raw)).toEqual({ ok: false, error });
  });

  it(`takes at most ${MAX_SOURCE_LENGTH} characters, and says so`, () => {
    const base = "http://h/";
    const longest = base + "a".repeat(MAX_SOURCE_LENGTH - base.length);
    expect(parseSource(longest)).toEqual({ ok: true, source: longest });
    expect(parseSource(longest + "a")).toEqual({
      ok: false,
      error: "source must be at most 2048 characters, got 2049",
    });
    expect(parseSource(base + "a".repeat(5 * 1024 * 1024 - base.length))).toEqual({
      ok: false,
      error: "source must be at most 2048 characters, got 5242880",
    });
  });

  it("bounds the normalised form too (percent-encoding lengthens it)", () => {
    const raw = "http://h/" + " ".repeat(1000) + "x";
    expect(raw.length).toBeLessThanOrEqual(MAX_SOURCE_LENGTH);
    expect(parseSource(raw)).toEqual({
      ok: false,
      error: "source must be at most 2048 characters, got 3010 once normalised",
    });
  });
});

describe("sameSource", () => {
  it.each([
    ["http://h/fashion-mnist", "http://h/fashion-mnist/"],
    ["http://h/fashion-mnist", "http://h/fashion-mnist//"],
    ["http://h/fashion-mnist", "HTTP://H/fashion-mnist"],
    ["http://h:80/p", "http://h/p"],
    ["http://h", "http://h/"],
    ["http://[::1]:8080/p", "http://[0:0:0:0:0:0:0:1]:8080/p/"],
    ["http://h/a b", "http://h/a%20b"],
    ["http://h/p?t=1", "http://h/p/?t=1"],
  ])("%s is %s", (a, b) => {
    expect(sameSource(a, b)).toBe(true);
    expect(sameSource(b, a)).toBe(true);
  });

  it.each([
    ["http://h/fashion-mnist", "http://h/fashion-mnist/x"],
    ["http://h/p", "https://h/p"],
    ["http://h/p", "http://h:8080/p"],
    ["http://h/P", "http://h/p"],
    ["http://h/p", "http://h/p?t=1"],
    ["http://h/p?t=1", "http://h/p?t=2"],
    ["http://h/p", "http://u:p@h/p"],
    ["http://h/p", "not a url"],
  ])("%s is not %s", (a, b) => {
    expect(sameSource(a, b)).toBe(false);
  });

  it("an invalid source equals only itself", () => {
    expect(sameSource("not a url", "not a url")).toBe(true);
    expect(sameSource("not a url", "not a url/")).toBe(false);
  });
});

describe("archiveUrl", () => {
  it.each([
    ["http://h/p", "a.gz", "http://h/p/a.gz"],
    ["http://h/p/", "a.gz", "http://h/p/a.gz"],
    ["http://h", "a.gz", "http://h/a.gz"],
    ["http://h/", "a.gz", "http://h/a.gz"],
    ["http://h/p?t=1", "a.gz", "http://h/p/a.gz?t=1"],
    ["http://h?t=1&u=2", "a.gz", "http://h/a.gz?t=1&u=2"],
    ["http://[::1]:8080/p", "a.gz", "http://[::1]:8080/p/a.gz"],
    ["http://u:s@h/p", "a.gz", "http://u:s@h/p/a.gz"],
    ["http://h/a%20b", "c d.gz", "http://h/a%20b/c%20d.gz"],
    ["http://h/p", "x/../y?z#w.gz", "http://h/p/x%2F..%2Fy%3Fz%23w.gz"],
    ["http://h/p", "train-images-idx3-ubyte.gz", "http://h/p/train-images-idx3-ubyte.gz"],
  ])("%s + %s is %s", (source, file, url) => {
    expect(archiveUrl(source, file)).toBe(url);
  });
});

describe("redactUrl", () => {
  it.each([
    ["http://user:pass@h/p", "http://***@h/p"],
    ["http://user@h/p", "http://***@h/p"],
    ["http://:pass@h/p", "http://***@h/p"],
    ["http://user:pass@[::1]:8080", "http://***@[::1]:8080"],
    ["http://h/p?token=abc&x=1", "http://h/p?token=***&x=***"],
    ["http://h/p?secret", "http://h/p?***"],
    ["http://h/p?a=&b=1&&c", "http://h/p?a=***&b=***&&***"],
    ["http://u:p@h/p/a.gz?token=abc#frag", "http://***@h/p/a.gz?token=***#***"],
    ["http://h/p", "http://h/p"],
    ["http://[::1]:8080/a%20b/c.gz", "http://[::1]:8080/a%20b/c.gz"],
    ["https://h", "https://h"],
  ])("%s shows as %s", (url, shown) => {
    expect(redactUrl(url)).toBe(shown);
  });

  it("keeps nothing of the user or the password", () => {
    const shown = redactUrl("http://alice:s3cr%40t@h/p");
    expect(shown).toBe("http://***@h/p");
    expect(shown).not.toMatch(/alice|s3cr/);
  });

  it("redacts URLs inside a string that is not one URL", () => {
    expect(redactUrl("http://h/a b http://u:p@x/")).toBe("http://h/a b http://***@x/");
  });
});

describe("redactText", () => {
  it.each([
    [
      "train-labels-idx1-ubyte.gz: HTTP 404 Not Found from http://user:secret@127.0.0.1:9/f/x/train-labels-idx1-ubyte.gz?token=s3cret",
      "train-labels-idx1-ubyte.gz: HTTP 404 Not Found from http://***@127.0.0.1:9/f/x/train-labels-idx1-ubyte.gz?token=***",
    ],
    [
      "a.gz: could not connect (Network connection lost.) fetching https://u:p@h/a.gz",
      "a.gz: could not connect (Network connection lost.) fetching https://***@h/a.gz",
    ],
    ["two: http://a:b@h1/x and http://h2/y?k=v.", "two: http://***@h1/x and http://h2/y?k=***"],
    ["ends a sentence: http://u:p@h/p.", "ends a sentence: http://***@h/p."],
    ["in parentheses (http://u:p@h/p), then more", "in parentheses (http://***@h/p), then more"],
    ['quoted "http://u:p@h/p"', 'quoted "http://***@h/p"'],
    ["a password with quotes http://u:it's@h/p", "a password with quotes http://***@h/p"],
    ["no URL here: user:pass@host", "no URL here: user:pass@host"],
    ["a.gz: MD5 abc does not match the published def", "a.gz: MD5 abc does not match the published def"],
    ["", ""],
  ])("%s", (text, shown) => {
    expect(redactText(text)).toBe(shown);
  });
});
