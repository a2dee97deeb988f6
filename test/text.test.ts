import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import fc from "fast-check";
import { describe, expect, test } from "vitest";

import { basicClean, whitespaceClean } from "../src/simple_tokenizer.js";
import { pySplit, pyStrip } from "../src/text/charclass.js";
import { fixEncoding, fixText, isBad, unescapeHtml } from "../src/text/ftfy.js";
import { htmlUnescape } from "../src/text/html_unescape.js";

interface ExtraCase {
  text: string;
  fixed: string;
  unescaped: string;
}

const extra: ExtraCase[] = readFileSync(fileURLToPath(new URL("../tools/fixtures/tokenizer_extra_cases.jsonl", import.meta.url)), "utf8")
  .split("\n")
  .filter((line) => line !== "")
  .map((line) => JSON.parse(line) as ExtraCase);

describe("ftfy.fix_text (6.3.1)", () => {
  test("equals Python's result on all 1401 fixture strings", () => {
    const failures = extra.filter((c) => fixText(c.text) !== c.fixed).map((c) => c.text);
    console.log(`fix_text: ${extra.length - failures.length}/${extra.length} equal`);
    expect(failures).toEqual([]);
  });

  test("mojibake in several code pages", () => {
    expect(fixText("âœ” No problems")).toBe("✔ No problems");
    expect(fixText("â\x80\x99mojibakeâ\x80\x9d and Ã©tÃ©")).toBe("'mojibake\" and été");
    expect(fixText("schÃ¶n")).toBe("schön");
    expect(fixText("Ã la mode")).toBe("à la mode"); // a space standing for byte 0xA0
    expect(fixText("â€œ like this â€\ufffd")).toBe('" like this \ufffd'); // a lost byte
    expect(fixText("í\xa0½í\xb8\x8d")).toBe("😍"); // CESU-8
    expect(fixEncoding("sÃ³")).toBe("só");
    expect(fixEncoding("Ð¿Ñ€Ð¸Ð²ÐµÑ‚")).toBe("привет");
  });

  test("Python's `$` also matches before a final newline inside ftfy's CESU-8 decoder", () => {
    // "Ã©À\n" -> bytes C3 A9 C0 0A: C0 before the final "\n" reads as Java's two-byte NUL, which is then removed
    expect(fixText("Ã©À\n")).toBe("é");
    expect(fixText("Ã©À")).toBe("éÀ");
  });

  test("the other fixers", () => {
    expect(fixText("ligature ﬁ ﬂ ﬅ Ĳ")).toBe("ligature fi fl ſt IJ");
    expect(fixText("ＬＯＵＤ　ＮＯＩＳＥＳ ｶﾀｶﾅ")).toBe("LOUD NOISES カタカナ");
    expect(fixText("‘a’ “b” ʼc")).toBe("'a' \"b\" 'c");
    // U+0085 is taken as windows-1252's ellipsis before line breaks are unified
    expect(fixText("a\r\nb\rc\u2028d\u2029e\x85f")).toBe("a\nb\nc\nd\ne…f");
    expect(fixText("\x1b[36;44mblue\x1b[0m")).toBe("blue");
    expect(fixText("a\x00b\x07c\x7fd\ufeffe\ufffcf\u206ag\tn")).toBe("abcdefg\tn");
    expect(fixText("\udca9 lone")).toBe("\ufffd lone");
    expect(fixText("combining e\u0301")).toBe("combining é");
    expect(fixText("\x80\x9f")).toBe("€Ÿ");
  });

  test("entities: only complete ones, some upper-cased names, none from the first line with '<' on", () => {
    expect(unescapeHtml("&ntilde; &Ntilde; &NTILDE; &nTILDE;")).toBe("ñ Ñ Ñ &nTILDE;");
    expect(unescapeHtml("P&EACUTE;REZ &#x2019; &#39; &#xZZ; &#99999999;")).toBe("PÉREZ ’ ' &#xZZ; \ufffd");
    expect(fixText("this&not that &amp;")).toBe("this&not that &");
    expect(fixText("&amp;\n<p>&amp;\n&amp;")).toBe("&\n<p>&amp;\n&amp;");
  });

  test("isBad", () => {
    expect(isBad("Ã©")).toBe(true);
    expect(isBad("café crème")).toBe(false);
    expect(isBad("\x85")).toBe(true);
    expect(isBad("ΣΑΣ")).toBe(false);
  });

  test("fast-check: any text is fixed without throwing, into NFC without lone surrogates or removed controls", () => {
    const soup = fc.string({
      unit: fc.oneof(
        fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
        fc.constantFrom("Ã", "Â", "â", "€", "©", "\xa0", " ", "\n", "&amp;", "&#", "<", "í", "\xa0", "\x80", "À", "Ð", "Ñ"),
      ),
      maxLength: 40,
    });
    fc.assert(
      fc.property(soup, (text) => {
        const fixed = fixText(text);
        expect(fixed).toBe(fixed.normalize("NFC"));
        expect(/\p{Cs}|[\x00-\x08\x0b\x0e-\x1f\x7f\ufeff]/u.test(fixed)).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  test("a long line of mojibake is fixed in reasonable time", () => {
    const long = "Ã©tÃ© â€œquoteâ€\ufffd ".repeat(20_000);
    const start = performance.now();
    expect(fixText(long)).toBe('été "quote\ufffd '.repeat(20_000));
    expect(performance.now() - start).toBeLessThan(10_000);
  });
});

describe("html.unescape (Python 3)", () => {
  test("equals Python's result on all 1401 fixture strings", () => {
    const failures = extra.filter((c) => htmlUnescape(c.text) !== c.unescaped).map((c) => c.text);
    expect(failures).toEqual([]);
  });

  test("named, legacy, numeric and invalid references", () => {
    expect(htmlUnescape("&amp; &lt;b&gt; &quot;q&quot; &#39;a&#39; &nbsp;x&copy;")).toBe("& <b> \"q\" 'a' \xa0x©");
    expect(htmlUnescape("&notit; &ampx &copy2 &AMP")).toBe("¬it; &x ©2 &");
    expect(htmlUnescape("&#0; &#13; &#128; &#x81; &#xD800; &#1114112; &#11; &#65 &#x1F600;")).toBe("\ufffd \r € \x81 \ufffd \ufffd  A 😀");
    expect(htmlUnescape("&#000000000000065; &#99999999999999999999;")).toBe("A \ufffd");
    expect(htmlUnescape("&constructor; &__proto__; &toString")).toBe("&constructor; &__proto__; &toString");
    expect(htmlUnescape("& &; &#; &#x;")).toBe("& &; &#; &#x;");
  });
});

describe("Python string helpers", () => {
  test("strip and split use str.isspace (with \\x1c..\\x1f and \\x85, without U+FEFF)", () => {
    expect(pyStrip("\x1c\x85 a b\u3000\t")).toBe("a b");
    expect(pyStrip("\ufeffa\u200b")).toBe("\ufeffa\u200b");
    expect(pySplit("  a\x1fb  c\u00a0d ")).toEqual(["a", "b", "c", "d"]);
    expect(pySplit(" \t ")).toEqual([]);
  });

  test("whitespaceClean uses the regex module's \\s (with \\x85, without \\x1c or U+FEFF), then strips", () => {
    expect(whitespaceClean("a\x85\u2028b\u3000 c")).toBe("a b c");
    expect(whitespaceClean("a\x1cb\ufeffc")).toBe("a\x1cb\ufeffc");
    expect(whitespaceClean("\x1c a ")).toBe("a");
  });

  test("basicClean: fix_text, html.unescape twice, strip", () => {
    expect(basicClean("  &amp;amp;amp;amp; ")).toBe("&");
    expect(basicClean("<b>&amp;amp;amp;</b>")).toBe("<b>&amp;</b>");
  });
});
