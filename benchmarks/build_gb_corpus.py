#!/usr/bin/env python3
"""Build a ~1 GB corpus of real text and code for training at scale.

    python3 benchmarks/build_gb_corpus.py                       # ~1 GB into /tmp/bytepiece-gb
    python3 benchmarks/build_gb_corpus.py --total-mb 300 --out DIR --cache DIR

FOR BENCHMARKS ONLY, like build_large_corpus.py (whose fetching, man page rendering,
HTML and code cleaning this script reuses): the output is written outside the
repository and never bundled or committed. Most sources are GPL or other copyleft
licences: fine for measuring, not for shipping. Every package's Debian copyright file
is copied to <out>/LICENSES/.

What it writes (into --out, default /tmp/bytepiece-gb), for each group
(en, eu, zh, ja, code):

    GROUP.train.txt     the training text (about --total-mb MB over all groups)
    GROUP.slice.txt     every 5th training document: a 1/5 slice with the same mix
                        (about 200 MB at the default size)
    GROUP.heldout.txt   every 100th document, never in train or slice
    LICENSES/<package>.copyright
    SOURCES.txt         the packages, their versions, licences and bytes taken

The documents are cleaned as build_large_corpus.py cleans them (prose one paragraph
per line, code files with a ``file:`` comment line first). Documents are sorted by
name within each group; the held-out split takes index % 100 == 99, the slice every
5th remaining document. Budgets take whole documents in sha256(name) order. Running
it twice gives byte-identical files (the summary prints their sha256).

Sources (Debian 12 "bookworm"; ``apt-get download NAME=VERSION``, unpacked with
``dpkg-deb -x``, nothing installed; the Linux kernel's source comes from the
``linux-source-6.1`` package, built from the ``linux`` source package, which holds the
source tree as a tarball):

    en    everything of build_large_corpus.py's English sources, without its caps
          (Linux man-pages, debian-reference, debian-handbook, python3.11-doc); the
          kernel's Documentation/ (reStructuredText, GPL-2.0); postgresql-doc-15 (HTML,
          PostgreSQL licence); rust-doc's books (HTML, MIT or Apache-2.0); perl-doc's
          man pages (GPL-1+ or Artistic); debian-policy (HTML, GPL-2+ and others);
          gnu-standards (HTML, GFDL without invariant sections)
    eu    manpages-de, manpages-fr, manpages-es (translations, GPL-3+ and the
          originals' licences)
    zh    build_large_corpus.py's Chinese sources; fortunes-zh (classical poetry, GPL-2+)
    ja    build_large_corpus.py's Japanese sources, without its caps
    code  build_large_corpus.py's code sources, without caps (Python: PSF-2.0; C headers:
          GPL-2.0 with syscall note, public domain; Rust crates: MIT or Apache-2.0;
          JavaScript: MIT); golang-1.19-src (Go, BSD-3-Clause); libboost1.81-dev
          (C++ headers, BSL-1.0); perl-modules-5.36 (Perl, GPL-1+ or Artistic);
          rust-src (Rust's standard library, MIT or Apache-2.0); and the Linux kernel's
          C sources and headers (GPL-2.0), which fill the budget up to --total-mb

Runtime: about 10 minutes on 2 cores at the default size; about 400 MB of downloads
and 3 GB of cache (the kernel tree unpacked).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build_large_corpus as blc  # (the sibling script: fetching and cleaning)

MB = blc.MB

GB_PACKAGES = {
    "linux-source-6.1": "6.1.192-3",
    "golang-1.19-src": "1.19.8-2",
    "libboost1.81-dev": "1.81.0-5+deb12u1",
    "perl-modules-5.36": "5.36.0-7+deb12u4",
    "perl-doc": "5.36.0-7+deb12u4",
    "rust-doc": "1.63.0+dfsg1-2",
    "rust-src": "1.63.0+dfsg1-2",
    "postgresql-doc-15": "15.20-0+deb12u1",
    "manpages-de": "4.18.1-1",
    "manpages-fr": "4.18.1-1",
    "manpages-es": "4.18.1-1",
    "fortunes-zh": "2.98",
    "debian-policy": "4.6.2.0",
    "gnu-standards": "2022.03.23-0.1",
}
LICENCES = {
    "linux-source-6.1": "GPL-2.0 (with the syscall note for uapi headers)",
    "golang-1.19-src": "BSD-3-Clause",
    "libboost1.81-dev": "BSL-1.0",
    "perl-modules-5.36": "GPL-1+ or Artistic-1",
    "perl-doc": "GPL-1+ or Artistic-1",
    "rust-doc": "MIT or Apache-2.0",
    "rust-src": "MIT or Apache-2.0",
    "postgresql-doc-15": "PostgreSQL",
    "manpages-de": "GPL-3+ (translations; originals under their own licences)",
    "manpages-fr": "GPL-3+ (translations; originals under their own licences)",
    "manpages-es": "GPL-3+ (translations; originals under their own licences)",
    "fortunes-zh": "GPL-2+",
    "debian-policy": "GPL-2+ and others (see its copyright file)",
    "gnu-standards": "GFDL-1.3+ (no invariant sections)",
    "groff-base": "GPL-3+ (the man page renderer; no text taken)",
}
GROUPS = ("en", "eu", "zh", "ja", "code")
HELDOUT_EVERY = 100
SLICE_EVERY = 5
KERNEL = "linux-source-6.1"


def kernel_tree(fetcher: blc.Fetcher) -> str:
    """The unpacked kernel source tree (the package holds it as a .tar.xz)."""
    root = fetcher.root(KERNEL)
    tree = os.path.join(fetcher.cache, "x", "linux-6.1-tree")
    if not os.path.isdir(tree):
        tarball = os.path.join(root, "usr/src/linux-source-6.1.tar.xz")
        tmp = tempfile.mkdtemp(dir=os.path.join(fetcher.cache, "x"))
        subprocess.run(["tar", "-xJf", tarball, "-C", tmp], check=True)
        os.rename(os.path.join(tmp, "linux-source-6.1"), tree)
        os.rmdir(tmp)
    return tree


def kernel_code(fetcher: blc.Fetcher):
    tree = kernel_tree(fetcher)
    for rel in blc.walk_files(tree):
        if not rel.endswith((".c", ".h")) or rel.startswith("Documentation/"):
            continue
        lines = blc.code_doc(os.path.join(tree, rel), "linux/" + rel, "//")
        if lines:
            yield f"{KERNEL}/{rel}", lines


def paragraphs(text: str) -> list[str]:
    """Plain-text or reStructuredText as one line per paragraph (blank-line separated);
    indented blocks (code, literal blocks) and directives are dropped, and the lines
    are cleaned as prose (blc.prose_lines)."""
    out = []
    for block in re.split(r"\n\s*\n", text):
        lines = block.split("\n")
        if not lines or lines[0].startswith((" ", "\t", "..")):
            continue
        out.append(" ".join(line.strip() for line in lines))
    return blc.prose_lines(out, False)


def kernel_docs(fetcher: blc.Fetcher):
    tree = kernel_tree(fetcher)
    base = os.path.join(tree, "Documentation")
    for rel in blc.walk_files(base):
        if not rel.endswith((".rst", ".txt")) or "/translations/" in "/" + rel:
            continue
        with open(os.path.join(base, rel), "rb") as handle:
            raw = handle.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        lines = paragraphs(text.replace("\r\n", "\n"))
        if lines:
            yield f"{KERNEL}/Documentation/{rel}", lines


def fortunes(fetcher: blc.Fetcher, pkg: str, path: str):
    """A fortune file: entries separated by lines holding '%'; 200 entries a document."""
    with open(os.path.join(fetcher.root(pkg), path), "rb") as handle:
        text = handle.read().decode("utf-8", "replace")
    entries = [e.strip() for e in re.split(r"\n%\n", text) if e.strip()]
    for i in range(0, len(entries), 200):
        lines = blc.prose_lines([" ".join(e.split("\n")) for e in entries[i : i + 200]], True)
        if lines:
            yield f"{pkg}/{os.path.basename(path)}#{i // 200:04d}", lines


def uncapped(sources):
    return [(name, gen, None) for name, gen, _ in sources]


def sources():
    """Each group's (name, generator, budget in bytes, None: all, or "rest": what the
    other groups leave of --total-mb)."""
    DOC = "usr/share/doc/"
    RUST_BOOKS = r"^(book|reference|rust-by-example|nomicon|embedded-book|rustc|edition-guide|cargo)/.*\.html$"

    def en(f, g):
        return uncapped(blc.sources_en(f, g)) + [
            ("kernel-docs", lambda: kernel_docs(f), None),
            (
                "postgresql-doc-15",
                lambda: blc.html_docs(f, "postgresql-doc-15", DOC + "postgresql-doc-15/html", r"\.html$", False),
                None,
            ),
            ("rust-doc", lambda: blc.html_docs(f, "rust-doc", DOC + "rust-doc/html", RUST_BOOKS, False), None),
            ("perl-doc", lambda: blc.man_docs(f, g, "perl-doc", "usr/share/man", False), None),
            (
                "debian-policy",
                lambda: blc.html_docs(f, "debian-policy", DOC + "debian-policy/policy.html", r"^[^/]+\.html$", False),
                None,
            ),
            (
                "gnu-standards",
                lambda: blc.html_docs(f, "gnu-standards", DOC + "gnu-standards", r"\.html$", False),
                None,
            ),
        ]

    def eu(f, g):
        return [
            (name, (lambda name=name, lang=lang: blc.man_docs(f, g, name, "usr/share/man/" + lang, False)), 12 * MB)
            for name, lang in (("manpages-de", "de"), ("manpages-fr", "fr"), ("manpages-es", "es"))
        ]

    def zh(f, g):
        return uncapped(blc.sources_zh(f, g)) + [
            ("fortunes-zh", lambda: fortunes(f, "fortunes-zh", "usr/share/games/fortunes/chinese"), None),
            ("fortunes-zh-tang", lambda: fortunes(f, "fortunes-zh", "usr/share/games/fortunes/tang300"), None),
            ("fortunes-zh-song", lambda: fortunes(f, "fortunes-zh", "usr/share/games/fortunes/song100"), None),
        ]

    def ja(f, g):
        return uncapped(blc.sources_ja(f, g))

    def code(f, g):
        return uncapped(blc.sources_code(f, g)) + [
            (
                "golang-1.19-src",
                lambda: blc.code_tree(
                    f, "golang-1.19-src", "usr/share/go-1.19/src", (".go",), "//", "go/", exclude=r"(^|/)testdata/"
                ),
                None,
            ),
            (
                "libboost1.81-dev",
                lambda: blc.code_tree(f, "libboost1.81-dev", "usr/include/boost", (".hpp",), "//", "boost/"),
                None,
            ),
            (
                "perl-modules-5.36",
                lambda: blc.code_tree(f, "perl-modules-5.36", "usr/share/perl/5.36.0", (".pm",), "#", "perl/"),
                None,
            ),
            (
                "rust-src",
                lambda: blc.code_tree(
                    f,
                    "rust-src",
                    "usr/lib/rustlib/src/rust/library",
                    (".rs",),
                    "//",
                    "rust/",
                    exclude=r"(^|/)(tests?|benches)/|stdarch/crates/core_arch/src/.*generated",
                ),
                None,
            ),
        ]

    def kernel(f, g):  # (collected as code; its budget is what the other groups leave)
        return [("linux-kernel", lambda: kernel_code(f), "rest")]

    return {"en": en, "eu": eu, "zh": zh, "ja": ja, "code": code, "kernel": kernel}


def collect(group: str, builders, fetcher, groff, rest: float) -> list[tuple[str, str, str]]:
    """(docid, text, source) of every chosen document of a group, by docid; a budget of
    "rest" takes `rest` bytes. (The kernel's documents are judged as code.)"""
    lang = "code" if group == "kernel" else group
    blc.BUILDERS[lang] = lambda f, g: [
        (name, gen, rest if budget == "rest" else budget) for name, gen, budget in builders[group](f, g)
    ]
    return blc.collect(lang, fetcher, groff)


def doc_bytes(docs) -> int:
    return sum(len(d[1].encode()) + 2 for d in docs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/tmp/bytepiece-gb", help="output folder (default: %(default)s)")
    ap.add_argument(
        "--cache",
        default=os.path.join(tempfile.gettempdir(), "bytepiece-gb-cache"),
        help="where .deb files are downloaded and unpacked (default: %(default)s)",
    )
    ap.add_argument("--total-mb", type=float, default=1000, help="about this many MB in all (default %(default)s)")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    os.makedirs(args.cache, exist_ok=True)
    blc.PACKAGES.update(GB_PACKAGES)
    fetcher = blc.Fetcher(os.path.abspath(args.cache))
    groff = blc.Groff(fetcher)
    builders = sources()
    collected: dict[str, list] = {}
    used = 0
    for group in (*GROUPS, "kernel"):  # (the kernel last: it fills the rest)
        print(f"building {group}", flush=True)
        rest = max(0.0, args.total_mb * MB - used)
        docs = collect(group, builders, fetcher, groff, rest)
        used += doc_bytes(docs)
        if group == "kernel":
            collected["code"] = sorted(collected["code"] + docs, key=lambda d: d[0])
        else:
            collected[group] = docs
    summary = []
    for group, docs in collected.items():
        held = [d for i, d in enumerate(docs) if i % HELDOUT_EVERY == HELDOUT_EVERY - 1]
        train = [d for i, d in enumerate(docs) if i % HELDOUT_EVERY != HELDOUT_EVERY - 1]
        part = [d for i, d in enumerate(train) if i % SLICE_EVERY == 0]
        for split, chosen in (("train", train), ("slice", part), ("heldout", held)):
            name = f"{group}.{split}.txt"
            blc.write_docs(os.path.join(out, name), chosen)
            summary.append(name)
    write_sources(out, fetcher, collected)
    print()
    total = 0
    for name in summary:
        size = os.path.getsize(os.path.join(out, name))
        total += size if name.endswith(".train.txt") else 0
        print("%-18s %9.2f MB" % (name, size / MB))
    print("training text in total: %.1f MB" % (total / MB))
    print()
    for name in summary:
        print(f"{blc.sha256_file(os.path.join(out, name))}  {name}")
    print(f"\nwritten to {out}")
    return 0


def write_sources(out: str, fetcher: blc.Fetcher, collected) -> None:
    licdir = os.path.join(out, "LICENSES")
    if os.path.isdir(licdir):
        shutil.rmtree(licdir)
    os.makedirs(licdir)
    taken: dict[str, int] = {}
    for docs in collected.values():
        for _, text, source in docs:
            taken[source] = taken.get(source, 0) + len(text.encode()) + 2
    lines = ["source\tbytes\tpackages and licences"]
    for source in sorted(taken):
        lines.append(f"{source}\t{taken[source]}")
    lines.append("")
    for pkg in sorted(fetcher.used):
        shutil.copyfile(blc.copyright_file(fetcher, pkg), os.path.join(licdir, pkg + ".copyright"))
        version = blc.PACKAGES[pkg]
        lines.append(f"{pkg}={version}\t{LICENCES.get(pkg, 'see LICENSES/' + pkg + '.copyright')}")
    with open(os.path.join(out, "SOURCES.txt"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    # (a digest of the list, to compare two builds at a glance)
    print("sources digest", hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16])


if __name__ == "__main__":
    sys.exit(main())
