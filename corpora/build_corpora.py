#!/usr/bin/env python3
"""Rebuild the bundled corpora in this folder from pinned Debian packages.

    python3 corpora/build_corpora.py            # rebuild and compare with SHA256SUMS
    python3 corpora/build_corpora.py --cache DIR

The script fetches each source package with ``apt-get download NAME=VERSION``
(no root needed once the apt lists exist; if the download fails and we are
root it runs ``apt-get update`` once and tries again), unpacks it with
``dpkg-deb -x`` into a cache folder, and writes:

    en.train.txt  en.heldout.txt     World English Bible (public domain)
    zh.train.txt  zh.heldout.txt     classical Chinese poems and sayings (public domain)
    code.train.txt code.heldout.txt  Python, C, Rust and JavaScript sources
    LICENSES/*                       licence and copyright files of the sources

Nothing is installed system-wide: a package is downloaded and unpacked, never
configured, so the versions used are exactly the pinned ones. The output
depends only on the package contents and on this script (and, for NFC, on the
Unicode tables of the Python that runs it; the texts used here do not touch
characters whose normalisation changed between Unicode versions).

Every output file is UTF-8, NFC, uses '\\n' line ends and ends with '\\n'.
Units (a Bible chapter, a poem, a source file) are separated by one blank line.
At the end the sha256 of each file is printed and compared with SHA256SUMS.
"""

import argparse
import hashlib
import html
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import unicodedata
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

PACKAGES = {
    "sword-text-web": "426.0-1",
    "fortunes-zh": "2.98",
    "libpython3.11-stdlib": "3.11.2-6+deb12u9",
    "libsqlite3-dev": "3.40.1-2+deb12u2",
    "librust-regex-syntax-dev": "0.6.27-1",
    "libjs-jquery": "3.6.1+dfsg+~3.5.14-1",
}

# Files copied verbatim into LICENSES/ (package, path inside the package, name).
LICENSE_FILES = [
    ("sword-text-web", "usr/share/doc/sword-text-web/copyright", "sword-text-web.copyright"),
    ("fortunes-zh", "usr/share/doc/fortunes-zh/copyright", "fortunes-zh.copyright"),
    ("libpython3.11-stdlib", "usr/lib/python3.11/LICENSE.txt", "python3.11-LICENSE.txt"),
    ("libsqlite3-dev", "usr/share/doc/libsqlite3-dev/copyright", "libsqlite3-dev.copyright"),
    (
        "librust-regex-syntax-dev",
        "usr/share/doc/librust-regex-syntax-dev/copyright",
        "librust-regex-syntax-dev.copyright",
    ),
    (
        "librust-regex-syntax-dev",
        "usr/share/cargo/registry/regex-syntax-0.6.27/LICENSE-MIT",
        "regex-syntax-LICENSE-MIT",
    ),
    ("libjs-jquery", "usr/share/doc/libjs-jquery/copyright", "libjs-jquery.copyright"),
]

OUTPUTS = [
    "en.train.txt",
    "en.heldout.txt",
    "zh.train.txt",
    "zh.heldout.txt",
    "code.train.txt",
    "code.heldout.txt",
]


# --------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------

_updated = False


def fetch(name, cache):
    """Download NAME at its pinned version and unpack it; return the root."""
    global _updated
    version = PACKAGES[name]
    root = os.path.join(cache, "x", f"{name}_{version}")
    if os.path.isdir(root):
        return root
    debdir = os.path.join(cache, "deb")
    os.makedirs(debdir, exist_ok=True)
    debs = [f for f in os.listdir(debdir) if f.startswith(name + "_") and _deb_version(f) == version]
    if not debs:
        cmd = ["apt-get", "download", f"{name}={version}"]
        ok = subprocess.run(cmd, cwd=debdir).returncode == 0
        if not ok and not _updated and os.geteuid() == 0:
            _updated = True
            subprocess.run(["apt-get", "update"], check=True)
            ok = subprocess.run(cmd, cwd=debdir).returncode == 0
        if not ok:
            sys.exit(
                f"cannot download {name}={version}: the pinned version is no longer "
                "served by the configured Debian mirror (see README.md)"
            )
        debs = [f for f in os.listdir(debdir) if f.startswith(name + "_") and _deb_version(f) == version]
    tmp = tempfile.mkdtemp(dir=cache)
    subprocess.run(["dpkg-deb", "-x", os.path.join(debdir, debs[0]), tmp], check=True)
    os.makedirs(os.path.dirname(root), exist_ok=True)
    os.rename(tmp, root)
    return root


def _deb_version(filename):
    # NAME_VERSION_ARCH.deb, with ':' of an epoch written as '%3a'.
    parts = filename[: -len(".deb")].split("_")
    return parts[1].replace("%3a", ":") if len(parts) == 3 else None


# --------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------


def clean_unit(text):
    """NFC, '\\n' line ends, no trailing spaces, no blank first/last lines."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def write_units(path, units):
    units = [u for u in units if u]
    data = "\n\n".join(units) + "\n"
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(data)


# --------------------------------------------------------------------------
# English: World English Bible (SWORD zText module, OSIS markup)
# --------------------------------------------------------------------------


def read_ztext(moddir, testament):
    """Yield the raw OSIS text of every entry of one testament, in order."""
    with open(os.path.join(moddir, testament + ".bzs"), "rb") as f:
        bzs = f.read()
    with open(os.path.join(moddir, testament + ".bzv"), "rb") as f:
        bzv = f.read()
    with open(os.path.join(moddir, testament + ".bzz"), "rb") as f:
        bzz = f.read()
    blocks = [struct.unpack_from("<III", bzs, i) for i in range(0, len(bzs), 12)]
    cache = {}
    for i in range(0, len(bzv), 10):
        block, offset, size = struct.unpack_from("<IIH", bzv, i)
        if size == 0:
            continue
        if block not in cache:
            start, csize, _ = blocks[block]
            cache = {block: zlib.decompress(bzz[start : start + csize])}
        yield cache[block][offset : offset + size].decode("utf-8")


CHAPTER = "\x00CHAPTER\x00"


def osis_to_text(osis):
    # A removed footnote stands for a space unless punctuation follows it
    # (the module often has no space around a note: 'God<note>..</note>created').
    s = re.sub(r"<note\b[^>]*/>", "\x01", osis)
    s = re.sub(r"<note\b.*?</note>", "\x01", s, flags=re.S)
    s = re.sub(r"<chapter\b[^>]*\bsID=[^>]*/>", "\n" + CHAPTER + "\n", s)
    s = re.sub(r"<title\b[^>]*>", "\n\n", s)
    s = re.sub(r"</title>", "\n\n", s)
    s = re.sub(
        r'<div\b[^>]*type="(x-p|paragraph|section|majorSection|'
        r'introduction|front|book)"[^>]*/?>',
        "\n\n",
        s,
    )
    s = re.sub(r"</?lg\b[^>]*>", "\n\n", s)
    s = re.sub(r"<l\b[^>]*/?>|</l>|<lb\b[^>]*/>", "\n", s)
    s = re.sub(r"<[^>]*>", "", s)
    s = re.sub("\x01+(?=[\\s,.;:!?\u2019\u201d)\\]])", "", s)
    s = s.replace("\x01", " ")
    s = html.unescape(s)
    return s


def tidy_paragraphs(text):
    """Collapse spaces, keep single line breaks, one blank line between paragraphs."""
    out, para = [], []
    for line in text.split("\n"):
        line = re.sub(r"[ \t\u00a0]+", " ", line).strip()
        if line:
            para.append(line)
        elif para:
            out.append("\n".join(para))
            para = []
    if para:
        out.append("\n".join(para))
    return "\n\n".join(out)


def build_en(cache):
    root = fetch("sword-text-web", cache)
    moddir = os.path.join(root, "usr/share/sword/modules/texts/ztext/engWEB2015eb")
    # Verses are joined with a space; markup decides where paragraphs break.
    raw = " ".join(v for t in ("ot", "nt") for v in read_ztext(moddir, t))
    text = osis_to_text(raw)
    chapters = [clean_unit(tidy_paragraphs(c)) for c in text.split(CHAPTER)]
    chapters = [c for c in chapters if c]
    train, heldout = [], []
    for i, chapter in enumerate(chapters):
        if i % 29 == 14:
            heldout.append(chapter)
        elif i % 3 == 1:
            train.append(chapter)
    return train, heldout


# --------------------------------------------------------------------------
# Chinese: classical poems and sayings from fortunes-zh
# --------------------------------------------------------------------------

# The 'chinese' fortune file mixes classical texts with modern, copyrighted
# ones (a translated Debian manual, book quotes, forum jokes). Only records
# attributed to these pre-modern works and authors are used.
ZH_WORKS = (
    "《论语》",
    "论语",
    "《菜根谭》",
    "《谚语》",
    "《增广贤文》",
    "《道德经》",
    "《孟子",
    "孟子及其弟子",
    "荀子",
)
ZH_AUTHORS = set(
    """
辛弃疾 苏轼 李煜 柳永 李白 吴文英 陆游 晏几道 姜夔 欧阳修 晏殊 张炎 蒋捷 王沂孙
张元 刘过 杜甫 史达祖 白居易 陈亮 张孝祥 刘克庄 刘辰翁 张先 周密 韦庄 温庭筠
陈人杰 冯延巳 李商隐 纳兰性德 王维 范成大 汪元量 敦煌 李清照 袁去华
南宋无名氏 吴潜 王安石 韩元吉 朱淑真 戴复古 范仲淹 秦观 岳飞 岑参 刘禹锡 文天祥
杜牧 杨炎正 卢祖皋 杨万里 王昌龄 程垓 张籍 刘长卿 赵善括 孙光宪 吕本中 黄机
吕渭老 陈与义 赵鼎 牛希济 王琪 黄庭坚 韩愈 韦应物 邓剡 张抡 康与之 高观国 张泌
戴叔伦 葛长庚 叶梦得 苏舜钦 刘将孙 陶渊明 石孝友 李弥逊 张九龄 张舜民 元稹 李贺
元好问 韩缜 高适 文及翁 汪莘 朱嗣发 柳宗元 刘仙伦 刘学箕 李曾伯 唐寅 严仁 林逋
张若虚 阮逸女 黄孝迈 陈德武 潘阆 朱熹 向子湮 曹豳 张绍文 王澜 王之涣 王以宁
王安国 胡世将 吴渊 宋祁 孟浩然 徐君宝妻 许浑 李邴 王清慧 赵希蓬 尹洙 蔡伸 华岳
方岳 贺知章 欧阳炯 周邦彦 洪皓 王翰 王勃 李冠 寇准 吴泳 岳珂 聂胜琼 黄景仁
李璟 袁枚 俞国宝 马致远 曹植 徐再思 和凝 郑谷 孙浩然 顾太清 屈原 严蕊 王观
黄公度 卓文君 李之仪 李颀 陈允平 醴陵士人 唐朝无名氏 杨佥判 李石 孟郊 徐昌图
绍兴太学生 赵以夫 贾岛 鹿虔 张志和 王建 李重元 查慎行 谢逸 杨亿 幼卿 郑燮
石延年 王诜 曹操 杜荀鹤 王炎 赵秉文 林则徐 五代无名氏 关汉卿 张养浩 蒋兴祖女
丘处机 阎选 淮上女 赵师侠 李好古 卢炳 张继 曹雪芹 张可久 李晔 牛峤 孙洙 赵彦端
王禹偁 杨慎 夏完淳 朱敦儒 王禹 崔涂 郑板桥 司马光 贺铸 李彭老 鱼玄机 徐有贞 姚宽
朱彝尊 李珣 武则天 龚自珍 卢梅坡 卢纶 张埜 陈东甫 崔护 叶绍翁 李益 胡令能 鲍照
黄巢 林升 颜真卿 周朴 刘彻 卢仝 常建 志南 高鼎 张仲素 王冕 罗隐 蒋士铨 刘方平
陈维崧 左思 陆龟蒙 皇甫松 惠洪 曾几 王磐 陈克 王士祯 顾彩 刘希夷 贺双卿 孙道绚
李纲 欧阳詹 俞彦 何梦桂 仲殊 晁补之 张榘 黄公绍 宋方壶 虞集 周紫芝 曹松 陈师道
周晋 如晦 赵嘏 王雱 陈继儒 董士锡 洪咨夔 高启 方干 顾夐 蜀妓 王贞白 廖世美 苏庠
崔颢 骆宾王 赵彦昭 窦叔向 张鸣善 李存勖 魏承班 刘镇 游次公 黄蘖禅师 查德卿 沈自晋
项鸿祚 贾至 蔡松年 韩翃 顾敻 顾德辉 张谓 严遂成 蔡确 司马扎 沈辂 赵师秀 乐婉 尹鹗
黄升 杨巨源 李绅 萧衍 司空曙 陈文述 吴融 谢枋得 谢灵运 汤恢 施耐庵 叶清臣 王庭筠
毛铉 米芾 高蟾 杜秋娘 高骈 李延年 李约 郑文宝 翁卷 朱栴 傅玄 戚继光 曾棨 李忱
朱庭玉 魏夫人 曾允元 曹组 司马相如 郑思肖 项羽 于谦 沈约 张维屏 赵孟頫 张耒 柳如是
龚翔麟 苏麟 李觏 林杰 王驾 雍裕之 韦承庆 杜耒 赵翼 雷震 储光羲 王羲之 徐灿 李斯
祖咏 薛道衡 庾信 白朴 宋之问 王籍 陶弘景 卢照邻 虞姬 马戴 惠能 钱福 杨炯 吴均
崔道融 钱嶫 陆机 司马迁 诸葛亮 徐干 范云 虞世南 秘演 洪升 何逊
""".split()
)

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def fortune_records(path):
    # A line starting with '%' ends a record; a few such lines carry stray
    # characters after the '%', which are dropped with the line.
    with open(path, encoding="utf-8") as f:
        data = ANSI.sub("", f.read())
    rec = []
    for line in data.split("\n") + ["%"]:
        if line.startswith("%"):
            text = clean_unit("\n".join(rec))
            if text:
                yield text
            rec = []
        else:
            rec.append(line)


def zh_classical(rec):
    last = rec.split("\n")[-1].strip()
    if not last.startswith("--"):
        return False
    who = last[2:].strip()
    if who.startswith(ZH_WORKS):
        return True
    if "《" in who and who.index("《") > 0:
        who = who[: who.index("《")]
    who = who.split("，")[-1].strip()
    return who in ZH_AUTHORS


def build_zh(cache):
    root = fetch("fortunes-zh", cache)
    fdir = os.path.join(root, "usr/share/games/fortunes")
    records, seen = [], set()
    for name in ("tang300", "song100"):
        records.extend(fortune_records(os.path.join(fdir, name)))
    records.extend(r for r in fortune_records(os.path.join(fdir, "chinese")) if zh_classical(r))
    units = []
    for rec in records:
        if rec not in seen:
            seen.add(rec)
            units.append(rec)
    train = [u for i, u in enumerate(units) if i % 10 != 7]
    heldout = [u for i, u in enumerate(units) if i % 10 == 7]
    return train, heldout


# --------------------------------------------------------------------------
# Source code
# --------------------------------------------------------------------------


def read_source(path):
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def source_unit(comment, relpath, text):
    return clean_unit(f"{comment} file: {relpath}\n{text}")


def build_code(cache):
    train, heldout = [], []

    # Python standard library (PSF licence): a deterministic pseudo-random
    # sample of whole modules, skipping generated data and very large files.
    root = fetch("libpython3.11-stdlib", cache)
    base = os.path.join(root, "usr/lib/python3.11")
    cands = []
    for d, dirs, files in os.walk(base):
        dirs.sort()
        for fn in sorted(files):
            rel = os.path.relpath(os.path.join(d, fn), base)
            if not fn.endswith(".py") or re.search(
                r"(^|/)(tests?|idlelib|encodings|pydoc_data|lib2to3|"
                r"site-packages|dist-packages)(/|$)|^_sysconfigdata",
                rel,
            ):
                continue
            size = os.path.getsize(os.path.join(base, rel))
            if 2000 <= size <= 60000:
                cands.append(rel)
    cands.sort(key=lambda r: hashlib.sha256(r.encode()).hexdigest())
    budget, chosen = 550000, []
    for rel in cands:
        text = read_source(os.path.join(base, rel))
        if text is None or budget - len(text.encode()) < 0:
            continue
        budget -= len(text.encode())
        chosen.append(source_unit("#", "Lib/" + rel, text))
    for i, unit in enumerate(chosen):
        (heldout if i % 8 == 3 else train).append(unit)

    # C: SQLite's public headers (public domain).
    root = fetch("libsqlite3-dev", cache)
    train.append(source_unit("//", "sqlite3.h", read_source(os.path.join(root, "usr/include/sqlite3.h"))))
    heldout.append(source_unit("//", "sqlite3ext.h", read_source(os.path.join(root, "usr/include/sqlite3ext.h"))))

    # Rust: the regex-syntax crate (MIT or Apache-2.0), without its generated
    # Unicode tables and its one very large file (ast/parse.rs).
    root = fetch("librust-regex-syntax-dev", cache)
    base = os.path.join(root, "usr/share/cargo/registry/regex-syntax-0.6.27")
    rs = []
    for d, dirs, files in os.walk(os.path.join(base, "src")):
        dirs.sort()
        for fn in sorted(files):
            rel = os.path.relpath(os.path.join(d, fn), base)
            if (
                fn.endswith(".rs")
                and "unicode_tables" not in rel
                and os.path.getsize(os.path.join(base, rel)) <= 120000
            ):
                rs.append(rel)
    rs.sort()
    for i, rel in enumerate(rs):
        unit = source_unit("//", "regex-syntax/" + rel, read_source(os.path.join(base, rel)))
        (heldout if i % 6 == 4 else train).append(unit)

    # JavaScript: unminified jQuery (MIT).
    root = fetch("libjs-jquery", cache)
    train.append(
        source_unit("//", "jquery.js", read_source(os.path.join(root, "usr/share/javascript/jquery/jquery.js")))
    )
    return train, heldout


# --------------------------------------------------------------------------


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--cache",
        default=os.path.join(tempfile.gettempdir(), "bytepiece-corpora-cache"),
        help="where .deb files are downloaded and unpacked",
    )
    ap.add_argument("--out", default=HERE, help="output folder")
    ap.add_argument("--write-sums", action="store_true", help="rewrite SHA256SUMS instead of checking against it")
    args = ap.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    out = args.out

    for lang, build in (("en", build_en), ("zh", build_zh), ("code", build_code)):
        train, heldout = build(args.cache)
        write_units(os.path.join(out, lang + ".train.txt"), train)
        write_units(os.path.join(out, lang + ".heldout.txt"), heldout)

    licdir = os.path.join(out, "LICENSES")
    os.makedirs(licdir, exist_ok=True)
    for pkg, rel, name in LICENSE_FILES:
        shutil.copyfile(os.path.join(fetch(pkg, args.cache), rel), os.path.join(licdir, name))

    sums = [f"{sha256(os.path.join(out, n))}  {n}" for n in OUTPUTS]
    for line, n in zip(sums, OUTPUTS):
        print("%s  (%d bytes)" % (line, os.path.getsize(os.path.join(out, n))))
    sums_path = os.path.join(HERE, "SHA256SUMS")
    if args.write_sums:
        with open(sums_path, "w") as f:
            f.write("\n".join(sums) + "\n")
        print("wrote", sums_path)
        return 0
    if os.path.exists(sums_path):
        with open(sums_path) as f:
            expected = f.read().split("\n")[:-1]
        if expected != sums:
            print("MISMATCH with SHA256SUMS", file=sys.stderr)
            return 1
        print("all files match SHA256SUMS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
