#!/usr/bin/env python3
"""Build a larger mixed-language corpus for the training benchmark.

    python3 benchmarks/build_large_corpus.py
    python3 benchmarks/build_large_corpus.py --out DIR --cache DIR

FOR BENCHMARKS ONLY. The output is written outside the repository (default
/tmp/bytepiece-large) and is never bundled or committed: several sources are
GPL or otherwise copyleft documentation, which is fine for measuring speed and
compression but not for shipping. The small corpora that *are* bundled live in
corpora/ and are built by corpora/build_corpora.py.

What it writes (into --out, default /tmp/bytepiece-large):

    en.train.txt    en.heldout.txt      English prose            (~9.9 MB)
    zh.train.txt    zh.heldout.txt      Simplified Chinese prose (~4.2 MB)
    ja.train.txt    ja.heldout.txt      Japanese prose           (~5.2 MB)
    code.train.txt  code.heldout.txt    Python, C, Rust, JavaScript (~11.6 MB)
    LICENSES/<package>.copyright        the Debian copyright file of every
                                        package used

Every file is UTF-8, NFC, with '\\n' line ends and a final '\\n'. Documents
are separated by exactly one blank line. In the prose files a document (a man
page, or a few consecutive sections of an HTML book) has no blank line inside
it: one paragraph per line, whitespace runs collapsed, lines that are mostly
symbols (table art, rules, lone bullets) dropped, code blocks, tables and
navigation dropped. In zh/ja files only lines with at least one CJK character
are kept. In the code file each document is one source file that starts with
a comment line naming it (``# file: ...`` or ``// file: ...``); it keeps its
own indentation and single blank lines (runs of blank lines become one).

Held-out split: within each language, documents are sorted by name
(``package/path[#part]``) and every 20th one (index % 20 == 19) goes to the
held-out file, the others to the train file; nothing is shared. When a source
has more text than its budget, whole documents are taken in the order of the
sha256 of their names until the budget is reached, so the choice is fixed.

Sources (Debian 12 "bookworm", exact versions below). Each package is fetched
with ``apt-get download NAME=VERSION`` into <cache>/deb (no root needed when
the apt lists exist; if that fails and we are root, ``apt-get update`` is run
once and the download retried) and unpacked with ``dpkg-deb -x`` into
<cache>/x/NAME_VERSION. Nothing is installed. Man pages are rendered to text
with the groff from the pinned ``groff-base`` package, run from the cache
(not the system's groff), so the output does not depend on what the machine
has installed.

    en    manpages, manpages-dev (Linux man-pages 6.03), debian-reference-en,
          debian-handbook (en-US), python3.11-doc (HTML docs, sampled)
    zh    manpages-zh (zh_CN only), debian-reference-zh-cn, debian-handbook
          (zh-CN), maint-guide-zh-cn, debian-faq-zh-cn
    ja    manpages-ja, manpages-ja-dev, debian-reference-ja, debian-handbook
          (ja-JP), maint-guide-ja, developers-reference-ja
    code  libpython3.11-stdlib + libpython3.11-minimal (Python), libpython3.11-dev,
          linux-libc-dev, libsqlite3-dev (C headers), librust-{tokio,syn,regex,
          serde,serde-json,clap,hyper}-dev (Rust crates), libjs-codemirror,
          libjs-jquery-ui, node-acorn (JavaScript)

Running it twice gives byte-identical files (the summary prints the sha256 of
each). If a pinned version disappears from the mirror (point releases replace
security updates), update PACKAGES below; the sha256s will then change.
Runtime: ~5 minutes on 2 cores, ~80 MB of downloads, ~370 MB of cache.
The sizes above are train + held-out; about 29 MB of training text in all.
"""

import argparse
import concurrent.futures
import gzip
import hashlib
import html.parser
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unicodedata

PACKAGES = {
    # renderer for man pages
    "groff-base": "1.22.4-10",
    # English
    "manpages": "6.03-2",
    "manpages-dev": "6.03-2",
    "debian-reference-en": "2.100",
    "debian-handbook": "11.20220922",
    "python3.11-doc": "3.11.2-6+deb12u9",
    # Chinese
    "manpages-zh": "1.6.4.0-1",
    "debian-reference-zh-cn": "2.100",
    "maint-guide-zh-cn": "1.2.53",
    "debian-faq-zh-cn": "11.1",
    # Japanese
    "manpages-ja": "0.5.0.0.20221215+dfsg-1",
    "manpages-ja-dev": "0.5.0.0.20221215+dfsg-1",
    "debian-reference-ja": "2.100",
    "maint-guide-ja": "1.2.53",
    "developers-reference-ja": "12.18",
    # code
    "libpython3.11-stdlib": "3.11.2-6+deb12u9",
    "libpython3.11-minimal": "3.11.2-6+deb12u9",
    "libpython3.11-dev": "3.11.2-6+deb12u9",
    "linux-libc-dev": "6.1.192-3",
    "libsqlite3-dev": "3.40.1-2+deb12u2",
    "librust-tokio-dev": "1.24.2-1",
    "librust-syn-dev": "1.0.107-1",
    "librust-regex-dev": "1.7.1-1",
    "librust-serde-dev": "1.0.152-2",
    "librust-serde-json-dev": "1.0.87-1",
    "librust-clap-dev": "4.0.32-1",
    "librust-hyper-dev": "0.14.19-1",
    "libjs-codemirror": "5.65.0+~cs5.83.9-2",
    "libjs-jquery-ui": "1.13.2+dfsg-1",
    "node-acorn": "8.8.1+ds+~cs25.17.7-2",
}

LANGS = ("en", "zh", "ja", "code")
HELDOUT_EVERY = 20
MB = 1000 * 1000


# --------------------------------------------------------------------------
# Fetching and unpacking
# --------------------------------------------------------------------------


class Fetcher:
    def __init__(self, cache):
        self.cache = cache
        self.updated = False
        self.used = []  # packages actually used, in first-use order

    def _find_deb(self, debdir, name, version):
        for fn in sorted(os.listdir(debdir)):
            if not fn.endswith(".deb"):
                continue
            parts = fn[:-4].split("_")
            if len(parts) == 3 and parts[0] == name and parts[1].replace("%3a", ":") == version:
                return os.path.join(debdir, fn)
        return None

    def root(self, name):
        """Unpacked tree of the pinned NAME (downloaded on first use)."""
        version = PACKAGES[name]
        if name not in self.used:
            self.used.append(name)
        root = os.path.join(self.cache, "x", f"{name}_{version}")
        if os.path.isdir(root):
            return root
        debdir = os.path.join(self.cache, "deb")
        os.makedirs(debdir, exist_ok=True)
        deb = self._find_deb(debdir, name, version)
        if deb is None:
            cmd = ["apt-get", "download", "-q", f"{name}={version}"]
            ok = subprocess.run(cmd, cwd=debdir).returncode == 0
            if not ok and not self.updated and os.geteuid() == 0:
                self.updated = True
                subprocess.run(["apt-get", "update", "-q"], check=True)
                ok = subprocess.run(cmd, cwd=debdir).returncode == 0
            deb = self._find_deb(debdir, name, version)
            if not ok or deb is None:
                sys.exit(
                    f"cannot download {name}={version}; if the mirror no longer has "
                    f"this version, update PACKAGES in {__file__}"
                )
        os.makedirs(os.path.join(self.cache, "x"), exist_ok=True)
        tmp = tempfile.mkdtemp(dir=os.path.join(self.cache, "x"))
        subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
        os.rename(tmp, root)
        return root


def walk_files(base):
    """All regular files (not symlinks) under base, as sorted relative paths."""
    out = []
    for d, dirs, files in os.walk(base):
        dirs.sort()
        for fn in files:
            p = os.path.join(d, fn)
            if os.path.isfile(p) and not os.path.islink(p):
                out.append(os.path.relpath(p, base))
    return sorted(out)


# --------------------------------------------------------------------------
# Line-level cleaning for prose
# --------------------------------------------------------------------------

_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\ufeff\ufff0-\uffff]"
)
_SPACES = re.compile(r"\s+")


def is_cjk(ch):
    o = ord(ch)
    return (
        0x3040 <= o <= 0x30FF
        or 0x3400 <= o <= 0x4DBF
        or 0x4E00 <= o <= 0x9FFF
        or 0xF900 <= o <= 0xFAFF
        or 0x3000 <= o <= 0x303F
        or 0xFF00 <= o <= 0xFFEF
        or 0x20000 <= o <= 0x2FFFF
    )


def is_kana(ch):
    return 0x3040 <= ord(ch) <= 0x30FF


_CJK = "\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_CJK_SPACE = re.compile(f"(?<=[{_CJK}]) (?=[{_CJK}])")


def clean_line(line):
    line = unicodedata.normalize("NFC", line)
    line = _CONTROL.sub("", line.replace("\u00ad", ""))
    return _SPACES.sub(" ", line).strip()


def mostly_symbols(line):
    """True for rules, table art, lone bullets: < half letters/digits."""
    chars = [c for c in line if not c.isspace()]
    if not chars:
        return True
    good = sum(1 for c in chars if unicodedata.category(c)[0] in "LN")
    return good * 2 < len(chars)


_BOX = re.compile("[\u2500-\u259f\u23a0-\u23bf]")


def prose_lines(lines, cjk):
    out = []
    for line in lines:
        line = clean_line(line)
        if not line or mostly_symbols(line) or _BOX.search(line):
            continue  # a rule, table art, a table row
        if cjk:
            if not any(is_cjk(c) for c in line):
                continue
            # A source line break inside CJK text became a space: remove it.
            line = _CJK_SPACE.sub("", line)
        out.append(line)
    return out


# --------------------------------------------------------------------------
# Man pages (rendered by the pinned groff)
# --------------------------------------------------------------------------


class Groff:
    def __init__(self, fetcher):
        g = fetcher.root("groff-base")
        self.groff = os.path.join(g, "usr/bin/groff")
        share = os.path.join(g, "usr/share/groff/1.22.4")
        self.env = {
            "PATH": os.path.join(g, "usr/bin") + ":/usr/bin:/bin",
            "LC_ALL": "C.UTF-8",
            "GROFF_BIN_PATH": os.path.join(g, "usr/bin"),
            "GROFF_FONT_PATH": os.path.join(share, "font"),
            "GROFF_TMAC_PATH": ":".join(
                [
                    os.path.join(g, "etc/groff"),
                    os.path.join(share, "tmac"),
                    os.path.join(g, "usr/share/groff/site-tmac"),
                ]
            ),
        }

    def render(self, source):
        """troff source (str) -> list of text lines, or None."""
        # A huge line length and no hyphenation give one output line per
        # paragraph; -P-cbou drops bold/underline overstriking and SGR codes.
        cmd = [self.groff, "-Tutf8", "-k", "-Kutf-8", "-t", "-mandoc", "-rLL=4000n", "-rHY=0", "-rcR=1", "-P-cbou"]
        res = subprocess.run(
            cmd, input=source.encode("utf-8"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=self.env, cwd="/"
        )
        if res.returncode != 0:
            return None
        text = res.stdout.decode("utf-8", "replace")
        lines = text.split("\n")
        # Drop the page header (first non-blank line) and footer (last one).
        nonblank = [i for i, l in enumerate(lines) if l.strip()]
        if len(nonblank) < 3:
            return None
        return lines[nonblank[0] + 1 : nonblank[-1]]


# No-fill blocks hold code examples, synopses, tables, pictures and equations:
# not running text, so they are removed from the troff source before
# rendering. (start request, end request); an unclosed block ends the page.
NOFILL = [
    (re.compile(r"^[.\']\s*(nf|EX)\b"), re.compile(r"^[.\']\s*(fi|EE)\b")),
    (re.compile(r"^[.\']\s*TS\b"), re.compile(r"^[.\']\s*TE\b")),
    (re.compile(r"^[.\']\s*PS\b"), re.compile(r"^[.\']\s*PE\b")),
    (re.compile(r"^[.\']\s*EQ\b"), re.compile(r"^[.\']\s*EN\b")),
    (re.compile(r"^[.\']\s*Bd\s+-(literal|unfilled)"), re.compile(r"^[.\']\s*Ed\b")),
]


def strip_nofill(src):
    out, end = [], None
    for line in src.split("\n"):
        if end is not None:
            if end.match(line):
                end = None
            continue
        for start, stop in NOFILL:
            if start.match(line):
                end = stop
                break
        else:
            out.append(line)
    return "\n".join(out)


def read_man(path):
    with open(path, "rb") as f:
        raw = f.read()
    if path.endswith(".gz"):
        raw = gzip.decompress(raw)
    try:
        src = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    body = [l for l in src.split("\n") if l.strip() and not l.startswith(('.\\"', "'\\\"", '\\"'))]
    if len(body) <= 2 and any(l.startswith(".so ") for l in body):
        return None  # a redirect to another page
    return strip_nofill(src)


def man_docs(fetcher, groff, pkg, mandir, cjk, sections=None):
    """Yield (docid, lines) for every page under mandir of pkg."""
    root = fetcher.root(pkg)
    base = os.path.join(root, mandir)
    jobs = []
    for rel in walk_files(base):
        sec = rel.split("/")[0]
        if not sec.startswith("man") or (sections and sec[3:] not in sections):
            continue
        src = read_man(os.path.join(base, rel))
        if src is not None:
            jobs.append((f"{pkg}/{rel}", src))
    workers = max(1, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        rendered = list(ex.map(groff.render, [s for _, s in jobs]))
    for (docid, _), lines in zip(jobs, rendered):
        if lines is None:
            continue
        yield docid, prose_lines(lines, cjk)


# --------------------------------------------------------------------------
# HTML books
# --------------------------------------------------------------------------

BREAK = "\x00BREAK\x00"  # marks a heading: a place where a document may end

BLOCK_TAGS = set(
    """address article aside blockquote body br caption dd div dl
dt figcaption figure footer h1 h2 h3 h4 h5 h6 header hr li main ol p section
table tbody td tfoot th thead tr ul""".split()
)
SKIP_TAGS = set(
    """script style head pre nav svg math button form select
textarea table object iframe noscript template""".split()
)
SKIP_CLASSES = set(
    """navheader navfooter toc list-of-tables list-of-figures
list-of-examples related sphinxsidebar sphinxsidebarwrapper footer headerlink
mobile-nav inline-search menu-wrapper highlight screen programlisting
literallayout synopsis cmdsynopsis funcsynopsis doctest-block
language_switcher_placeholder version_switcher_placeholder
mediaobject informalfigure figure-contents copyright legalnotice
toctree-wrapper docnav""".split()
)
SKIP_IDS = {"banner", "title"}
VOID_TAGS = set(
    """area base br col embed hr img input link meta param source
track wbr""".split()
)


class HtmlToText(html.parser.HTMLParser):
    """Visible running text of an HTML page, headings marked with BREAK.

    With root=(tag, class) only text inside that element is kept (e.g. the
    'body' div of a Sphinx page).
    """

    def __init__(self, root=None):
        super().__init__(convert_charrefs=True)
        self.root = root
        self.in_root = 0 if root else 1
        self.skip = None  # [tag, depth] of the element being skipped
        self.parts = []

    def handle_starttag(self, tag, attrs):
        if tag in VOID_TAGS:
            if tag in ("br", "hr") and self.in_root and not self.skip:
                self.parts.append("\n")
            return
        if self.skip:
            if tag == self.skip[0]:
                self.skip[1] += 1
            return
        attrs = dict(attrs)
        classes = set((attrs.get("class") or "").split())
        if not self.in_root:
            if tag == self.root[0] and self.root[1] in classes:
                self.in_root = 1
            return
        if self.root and tag == self.root[0]:
            self.in_root += 1
        # DocBook draws notes and tips as border-less layout tables: keep
        # those, skip real (data) tables.
        layout = tag == "table" and attrs.get("border") == "0"
        if (tag in SKIP_TAGS and not layout) or classes & SKIP_CLASSES or attrs.get("id") in SKIP_IDS:
            self.skip = [tag, 1]
            return
        if tag in ("h1", "h2", "h3"):
            self.parts.append("\n" + BREAK + "\n")
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if tag in VOID_TAGS:
            return
        if self.skip:
            if tag == self.skip[0]:
                self.skip[1] -= 1
                if self.skip[1] == 0:
                    self.skip = None
            return
        if not self.in_root:
            return
        if self.root and tag == self.root[0]:
            self.in_root -= 1
        if tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data):
        # Outside <pre> (always skipped) whitespace, newlines included, is
        # only a word space.
        if self.in_root and not self.skip:
            self.parts.append(_SPACES.sub(" ", data))

    def text(self):
        return "".join(self.parts)


def html_sections(path, root=None):
    """Text segments of one HTML page, split at h1-h3 headings."""
    with open(path, "rb") as f:
        raw = f.read()
    if path.endswith(".gz"):
        raw = gzip.decompress(raw)
    p = HtmlToText(root)
    p.feed(raw.decode("utf-8", "replace"))
    p.close()
    return p.text().split(BREAK)


def html_docs(fetcher, pkg, subdir, pattern, cjk, root=None, min_bytes=3000, exclude=None):
    """Yield (docid, lines): each HTML page under subdir whose relative path
    matches pattern, cut at headings into documents of >= min_bytes."""
    base = os.path.join(fetcher.root(pkg), subdir)
    for rel in walk_files(base):
        if not re.search(pattern, rel) or (exclude and re.search(exclude, rel)):
            continue
        part, buf, size = 0, [], 0
        segs = html_sections(os.path.join(base, rel), root)
        for i, seg in enumerate(segs):
            lines = prose_lines(seg.split("\n"), cjk)
            buf.extend(lines)
            size += sum(len(l.encode()) + 1 for l in lines)
            if buf and (size >= min_bytes or i == len(segs) - 1):
                yield "%s/%s/%s#%03d" % (pkg, subdir, rel, part), buf
                part, buf, size = part + 1, [], 0


# --------------------------------------------------------------------------
# Source code
# --------------------------------------------------------------------------


def code_doc(path, label, comment, max_bytes=150000, max_line=300):
    with open(path, "rb") as f:
        raw = f.read()
    if b"\x00" in raw or not (800 <= len(raw) <= max_bytes):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    if _CONTROL.search(text.replace("\t", "").replace("\n", "").replace("\x0c", "")):
        return None
    lines = [l.rstrip() for l in text.replace("\x0c", "").split("\n")]
    if max(len(l) for l in lines) > max_line:
        return None  # minified or generated
    out = [f"{comment} file: {label}"]
    for l in lines:
        if l or (out[-1] and len(out) > 1):
            out.append(l)
    while out and not out[-1]:
        out.pop()
    return out


def code_tree(fetcher, pkg, subdir, exts, comment, label_prefix, exclude=None, **kw):
    base = os.path.join(fetcher.root(pkg), subdir)
    for rel in walk_files(base):
        if not rel.endswith(exts) or (exclude and re.search(exclude, rel)):
            continue
        lines = code_doc(os.path.join(base, rel), label_prefix + rel, comment, **kw)
        if lines:
            yield f"{pkg}/{subdir}/{rel}", lines


# --------------------------------------------------------------------------
# The sources of each language: (name, generator of (docid, lines), budget)
# A budget of None takes everything; otherwise documents are taken in
# sha256(docid) order until the bytes reach the budget.
# --------------------------------------------------------------------------

HB = "usr/share/doc/debian-handbook/html/"
DREF = "usr/share/debian-reference"


def sources_en(f, groff):
    return [
        ("manpages", lambda: man_docs(f, groff, "manpages", "usr/share/man", False), None),
        ("manpages-dev", lambda: man_docs(f, groff, "manpages-dev", "usr/share/man", False), None),
        ("debian-reference-en", lambda: html_docs(f, "debian-reference-en", DREF, r"\.en\.html$", False), None),
        ("debian-handbook", lambda: html_docs(f, "debian-handbook", HB + "en-US", r"^[^/]+\.html$", False), None),
        (
            "python3.11-doc",
            lambda: html_docs(
                f,
                "python3.11-doc",
                "usr/share/doc/python3.11/html",
                r"^(library|tutorial|howto|reference|faq|using|extending|"
                r"c-api|whatsnew)/[^/]+\.html$",
                False,
                root=("div", "body"),
            ),
            3.6 * MB,
        ),
    ]


def sources_zh(f, groff):
    return [
        ("manpages-zh", lambda: man_docs(f, groff, "manpages-zh", "usr/share/man/zh_CN", True), None),
        ("debian-reference-zh-cn", lambda: html_docs(f, "debian-reference-zh-cn", DREF, r"\.zh-cn\.html$", True), None),
        ("debian-handbook", lambda: html_docs(f, "debian-handbook", HB + "zh-CN", r"^[^/]+\.html$", True), None),
        (
            "maint-guide-zh-cn",
            lambda: html_docs(f, "maint-guide-zh-cn", "usr/share/doc/maint-guide-zh-cn/html", r"\.html$", True),
            None,
        ),
        (
            "debian-faq-zh-cn",
            lambda: html_docs(f, "debian-faq-zh-cn", "usr/share/doc/debian/FAQ/zh-cn", r"\.html$", True),
            None,
        ),
    ]


def sources_ja(f, groff):
    return [
        ("manpages-ja", lambda: man_docs(f, groff, "manpages-ja", "usr/share/man/ja", True), 2.5 * MB),
        ("manpages-ja-dev", lambda: man_docs(f, groff, "manpages-ja-dev", "usr/share/man/ja", True), 1.0 * MB),
        ("debian-reference-ja", lambda: html_docs(f, "debian-reference-ja", DREF, r"\.ja\.html$", True), None),
        ("debian-handbook", lambda: html_docs(f, "debian-handbook", HB + "ja-JP", r"^[^/]+\.html$", True), None),
        (
            "maint-guide-ja",
            lambda: html_docs(f, "maint-guide-ja", "usr/share/doc/maint-guide-ja/html", r"\.html$", True),
            None,
        ),
        (
            "developers-reference-ja",
            lambda: html_docs(
                f,
                "developers-reference-ja",
                "usr/share/developers-reference/ja",
                r"^[^/]+\.html$",
                True,
                root=("div", "body"),
                exclude=r"^(genindex|search)\.html$",
            ),
            None,
        ),
    ]


PY_EXCLUDE = (
    r"(^|/)(tests?|idlelib|encodings|pydoc_data|lib2to3|turtledemo|"
    r"site-packages|dist-packages|config-3[^/]*)(/|$)|^_sysconfigdata"
)
RS_EXCLUDE = r"unicode_tables|(^|/)tests?/.*\.(txt|toml)$"


def rust(f, pkg, crate):
    reg = "usr/share/cargo/registry/" + crate
    return lambda: code_tree(f, pkg, reg, (".rs",), "//", crate + "/", exclude=RS_EXCLUDE)


def sources_code(f, groff):
    cm = "usr/share/nodejs/codemirror"
    return [
        (
            "libpython3.11-stdlib",
            lambda: code_tree(
                f, "libpython3.11-stdlib", "usr/lib/python3.11", (".py",), "#", "Lib/", exclude=PY_EXCLUDE
            ),
            2.4 * MB,
        ),
        (
            "libpython3.11-minimal",
            lambda: code_tree(
                f, "libpython3.11-minimal", "usr/lib/python3.11", (".py",), "#", "Lib/", exclude=PY_EXCLUDE
            ),
            1.0 * MB,
        ),
        (
            "libpython3.11-dev",
            lambda: code_tree(
                f, "libpython3.11-dev", "usr/include/python3.11", (".h",), "//", "Include/", exclude=r"generated"
            ),
            None,
        ),
        (
            "linux-libc-dev",
            lambda: code_tree(f, "linux-libc-dev", "usr/include", (".h",), "//", "linux-uapi/"),
            1.0 * MB,
        ),
        (
            "libsqlite3-dev",
            lambda: code_tree(
                f, "libsqlite3-dev", "usr/include", (".h",), "//", "sqlite/", max_bytes=1000000, max_line=1000
            ),
            None,
        ),
        ("librust-tokio-dev", rust(f, "librust-tokio-dev", "tokio-1.24.2"), 0.8 * MB),
        ("librust-syn-dev", rust(f, "librust-syn-dev", "syn-1.0.107"), 0.6 * MB),
        ("librust-regex-dev", rust(f, "librust-regex-dev", "regex-1.7.1"), None),
        ("librust-serde-dev", rust(f, "librust-serde-dev", "serde-1.0.152"), None),
        ("librust-serde-json-dev", rust(f, "librust-serde-json-dev", "serde_json-1.0.87"), None),
        ("librust-clap-dev", rust(f, "librust-clap-dev", "clap-4.0.32"), None),
        ("librust-hyper-dev", rust(f, "librust-hyper-dev", "hyper-0.14.19"), None),
        (
            "libjs-codemirror",
            lambda: code_tree(
                f, "libjs-codemirror", cm, (".js",), "//", "codemirror/", exclude=r"^(lib|theme)/|(^|/)test/"
            ),
            None,
        ),
        (
            "libjs-jquery-ui",
            lambda: code_tree(
                f,
                "libjs-jquery-ui",
                "usr/share/javascript/jquery-ui/ui",
                (".js",),
                "//",
                "jquery-ui/",
                exclude=r"^i18n/|\.min\.js$",
            ),
            None,
        ),
        (
            "node-acorn",
            lambda: code_tree(
                f, "node-acorn", "usr/share/nodejs", (".js", ".mjs"), "//", "", exclude=r"\.min\.js$|\.d\.ts$"
            ),
            None,
        ),
    ]


BUILDERS = {"en": sources_en, "zh": sources_zh, "ja": sources_ja, "code": sources_code}


def doc_ok(lang, lines):
    if not lines:
        return False
    text = "".join(lines)
    if lang == "code":
        return len(lines) >= 10
    if len(text.encode()) < 300:
        return False  # a stub page, an index, a redirect
    if lang in ("zh", "ja"):
        nonspace = [c for c in text if not c.isspace()]
        cjk = [c for c in nonspace if is_cjk(c)]
        if len(cjk) * 10 < len(nonspace) * 3:
            return False  # mostly untranslated
        if lang == "ja" and sum(1 for c in cjk if is_kana(c)) * 10 < len(cjk):
            return False  # no kana: not Japanese
        if lang == "zh" and sum(1 for c in cjk if is_kana(c)) * 50 > len(cjk):
            return False  # kana: not Chinese
    return True


def collect(lang, fetcher, groff):
    """(docid, text, source) for every chosen document of lang, by docid."""
    docs, seen = [], set()
    for name, gen, budget in BUILDERS[lang](fetcher, groff):
        cands = []
        for docid, lines in gen():
            if not doc_ok(lang, lines):
                continue
            text = "\n".join(lines)
            h = hashlib.sha256(text.encode()).digest()
            if h in seen:
                continue  # same page under two names (man1 and man8 ...)
            seen.add(h)
            cands.append((docid, text, name))
        if budget is not None:
            cands.sort(key=lambda d: hashlib.sha256(d[0].encode()).hexdigest())
            chosen, total = [], 0
            for d in cands:
                if total >= budget:
                    break
                chosen.append(d)
                total += len(d[1].encode()) + 2
            cands = chosen
        total = sum(len(d[1].encode()) + 2 for d in cands)
        print("  %-4s %-24s %5d docs %6.2f MB" % (lang, name, len(cands), total / MB), flush=True)
        docs.extend(cands)
    docs.sort(key=lambda d: d[0])
    return docs


def write_docs(path, docs):
    data = "\n\n".join(d[1] for d in docs) + "\n"
    assert "\r" not in data and data == unicodedata.normalize("NFC", data)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(data)


def copyright_file(fetcher, pkg):
    """usr/share/doc/PKG/copyright; some packages make usr/share/doc/PKG a
    symlink to the doc folder of the package they depend on (same source),
    which is then read from that (pinned) package."""
    seen = set()
    while pkg not in seen:
        seen.add(pkg)
        docdir = os.path.join(fetcher.root(pkg), "usr/share/doc", pkg)
        if os.path.islink(docdir):
            target = os.path.basename(os.readlink(docdir))
            if target in PACKAGES:
                pkg = target
                continue
        if os.path.isfile(os.path.join(docdir, "copyright")):
            return os.path.join(docdir, "copyright")
        break
    sys.exit(f"no copyright file for {pkg}")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/tmp/bytepiece-large", help="output folder (default: %(default)s)")
    ap.add_argument(
        "--cache",
        default=os.path.join(tempfile.gettempdir(), "bytepiece-large-cache"),
        help="where .deb files are downloaded and unpacked (default: %(default)s)",
    )
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    os.makedirs(args.cache, exist_ok=True)

    fetcher = Fetcher(os.path.abspath(args.cache))
    groff = Groff(fetcher)
    summary = []
    for lang in LANGS:
        print(f"building {lang}", flush=True)
        docs = collect(lang, fetcher, groff)
        train = [d for i, d in enumerate(docs) if i % HELDOUT_EVERY != HELDOUT_EVERY - 1]
        held = [d for i, d in enumerate(docs) if i % HELDOUT_EVERY == HELDOUT_EVERY - 1]
        for split, part in (("train", train), ("heldout", held)):
            name = f"{lang}.{split}.txt"
            write_docs(os.path.join(out, name), part)
            srcs = sorted({d[2] for d in part})
            summary.append((name, len(part), srcs))

    licdir = os.path.join(out, "LICENSES")
    if os.path.isdir(licdir):
        shutil.rmtree(licdir)
    os.makedirs(licdir)
    for pkg in sorted(fetcher.used):
        shutil.copyfile(copyright_file(fetcher, pkg), os.path.join(licdir, pkg + ".copyright"))

    print()
    print("%-18s %8s %6s  %s" % ("file", "MB", "docs", "sources"))
    total_train = 0
    for name, ndocs, srcs in summary:
        size = os.path.getsize(os.path.join(out, name))
        if name.endswith(".train.txt"):
            total_train += size
        print("%-18s %8.2f %6d  %s" % (name, size / MB, ndocs, ", ".join(srcs)))
    print("training text in total: %.2f MB" % (total_train / MB))
    print()
    for name, _, _ in summary:
        print(f"{sha256_file(os.path.join(out, name))}  {name}")
    print(f"\nwritten to {out} (licences in {licdir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
