/** `npm run etl`'s command line (scripts/lib/etl-options.ts), parsed in this process: no child, no Worker. */
import { expect, it } from "vitest";
import { parseEtlArgs, UsageError } from "../../scripts/lib/etl-options";

it("--source takes a directory or an http(s) URL, and refuses any other scheme as a usage error", () => {
  expect(parseEtlArgs(["--source", "https://example.com/fm"]).source).toBe("https://example.com/fm");
  expect(parseEtlArgs(["--source", "HTTP://example.com/fm"]).source).toBe("HTTP://example.com/fm");
  expect(parseEtlArgs(["--source", "../shared/fashion-mnist"]).source).toBe("../shared/fashion-mnist");
  expect(parseEtlArgs(["--source", "./ftp:/x"]).source).toBe("./ftp:/x");
  for (const source of ["ftp://example.com/x", "file:///tmp/fm", "s3://bucket/fm"]) {
    const refused = () => parseEtlArgs(["--source", source]);
    expect(refused).toThrow(UsageError);
    expect(refused).toThrow(`--source takes a local directory or an http(s) URL, got ${JSON.stringify(source)}`);
  }
});
