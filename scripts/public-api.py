#!/usr/bin/env python3
"""The public API of the `kstreams` facade, as one text listing read from its rustdoc pages.

    scripts/public-api.py            print the listing of the docs last built
    scripts/public-api.py --check    fail, with a diff, when it differs from docs/public-api.txt
    scripts/public-api.py --bless    write it to docs/public-api.txt

Build the docs first: `cargo doc --workspace --no-deps` (what CI runs, default features). The listing has
every item's declaration, its inherent methods, the traits it implements (auto traits too: `Send` is a
promise) and a trait's methods; an item reachable at several paths (`prelude`, root re-exports) is listed
once in full and then as `pub use` lines. It reads rustdoc's HTML rather than its JSON output because the
JSON needs a nightly toolchain; a new rustdoc may change the text, and then `--bless` takes the change.
"""

import difflib
import html
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LISTING = os.path.join(ROOT, "docs", "public-api.txt")
# Sections of an item page that belong to the item's own API; blanket impls (`impl<T> From<T> for T`) and a
# trait's implementors (listed on their own pages) are left out.
SECTIONS = {
    "implementations": "h34",
    "trait-implementations": "h3",
    "synthetic-implementations": "h3",
    "required-associated-types": "h4",
    "provided-associated-types": "h4",
    "required-associated-consts": "h4",
    "provided-associated-consts": "h4",
    "required-methods": "h4",
    "provided-methods": "h4",
    "variants": "",
    "fields": "",
}


def text(fragment):
    """Rustdoc HTML to one line of Rust: tags dropped, entities decoded, whitespace collapsed."""
    # A long enum's declaration folds behind a "Show 17 variants" toggle.
    fragment = re.sub(r"<summary.*?</summary>", "", fragment, flags=re.S)
    fragment = re.sub(r"</?div[^>]*>", " ", fragment)
    plain = html.unescape(re.sub(r"<[^>]+>", "", fragment))
    plain = re.sub(r"\s+", " ", plain).strip()
    return plain.replace("( ", "(").replace(" )", ")").replace(", }", " }").replace(",)", ")")


def page_listing(source):
    """The declaration and API lines of one item page."""
    decl = re.search(r'<pre class="rust item-decl"><code>(.*?)</code></pre>', source, re.S)
    lines = [text(decl.group(1))] if decl else []
    parts = re.split(r'<h2 id="([^"]+)" class="[^"]*section-header[^"]*">', source)
    for section, body in zip(parts[1::2], parts[2::2]):
        levels = SECTIONS.get(section)
        if not levels:
            continue
        for level, header in re.findall(r'<h([34]) class="code-header">(.*?)</h\1>', body, re.S):
            if level in levels:
                lines.append(("  " if level == "3" or levels == "h4" else "    ") + text(header))
    return lines


def item_path(prefix, relative):
    """`dsl/struct.KTable.html` -> `kstreams::dsl::KTable`."""
    *modules, page = relative[: -len(".html")].split("/")
    return "::".join([prefix, *modules, page.split(".", 1)[1]])


def item_pages(prefix, doc_dir):
    """(item path, listing) of every item page under one crate's rustdoc folder."""
    for folder, _, files in os.walk(doc_dir):
        for name in files:
            if not name.endswith(".html") or name in ("index.html", "all.html") or "." not in name[:-5]:
                continue
            full = os.path.join(folder, name)
            with open(full, encoding="utf-8") as f:
                source = f.read()
            if 'http-equiv="refresh"' not in source:
                yield item_path(prefix, os.path.relpath(full, doc_dir).replace(os.sep, "/")), page_listing(source)


def listing(crates):
    """The whole listing; `crates`: (path prefix, rustdoc folder) pairs."""
    pages = dict(page for prefix, doc_dir in crates for page in item_pages(prefix, doc_dir))
    out, first_path = [], {}
    # Shorter paths first, so an item is listed in full where users are most likely to name it.
    for path in sorted(pages, key=lambda p: (p.count("::"), p)):
        body = tuple(pages[path])
        if body in first_path:
            out.append((path, [f"pub use {first_path[body]} as {path};"]))
        else:
            first_path[body] = path
            out.append((path, [f"// {path}", *body]))
    return "\n".join(line.rstrip(",") for _, lines in sorted(out) for line in lines) + "\n"


def main():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    # The facade inlines what it re-exports of streams-core, state-store and the macros.
    crates = [("kstreams", os.path.join(target, "doc", "kstreams"))]
    for _, doc_dir in crates:
        if not os.path.isdir(doc_dir):
            sys.exit(f"public-api.py: no docs at {doc_dir}: run `cargo doc --workspace --no-deps` first")
    current = listing(crates)
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "--bless":
        with open(LISTING, "w", encoding="utf-8") as f:
            f.write(current)
        print(f"public-api.py: wrote {os.path.relpath(LISTING, ROOT)} ({current.count(chr(10))} lines)")
    elif mode == "--check":
        with open(LISTING, encoding="utf-8") as f:
            expected = f.read()
        if current != expected:
            sys.stdout.writelines(
                difflib.unified_diff(
                    expected.splitlines(True), current.splitlines(True), "docs/public-api.txt", "built docs"
                )
            )
            sys.exit(
                "public-api.py: the public API changed. If that is intended, run `cargo doc --workspace --no-deps "
                "&& scripts/public-api.py --bless` and commit docs/public-api.txt with the change."
            )
        print("public-api.py: the public API matches docs/public-api.txt")
    elif mode:
        sys.exit(f"public-api.py: unknown argument `{mode}` (--check or --bless)")
    else:
        sys.stdout.write(current)


if __name__ == "__main__":
    main()
