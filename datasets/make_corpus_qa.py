# requires: pyarrow==18.1.0
"""Writes a corpus-QA / summarization dataset: long shared documents, many
questions each, rows in shuffled arrival order.

Each document is a contiguous passage of one source book, starting at a
chapter heading, of a chosen approximate token length, with synthetic,
exactly checkable facts inserted at chosen depths, in the style of the RULER
long-context suite. Two corpora (--corpus):

- austen (default) a Jane Austen novel; paragraphs reflowed to one line each,
           separated by blank lines; the last one may be cut at a sentence.
- kjv      a book of the King James Bible: consecutive chapters of one book,
           the heading ("Genesis 1", "Song of Solomon 2") and each verse
           ("3 And God said, ...") as their own paragraphs, separated by blank
           lines; never cut inside a verse.

Tasks:

- needle   "The special magic number for <key> is <7 digits>." sentences;
           question "What is the special magic number for <key>? Answer with
           the number only."; expected_answer = the 7-digit number.
- vartrack a chain "VAR ABCDE = 48213 ." ... "VAR FGHIJ = VAR ABCDE ." ...
           spread through the document in reading order; question: which
           variables are assigned the value 48213; expected_answer = every
           name of the chain, in chain order, separated by single spaces
           (e.g. "ABCDE FGHIJ KLMNO PQRST"). The names are 5 random capital
           letters; a correct answer must contain all of them.
- summary  "Summarize the passage above in three sentences."; expected_answer
           null (no automatic score).
- verse    (kjv only) "Quote <Book> <c>:<v> from the passage above."; a verse
           of the document, at most 300 characters, whose text occurs once in
           it; expected_answer = the verse text without its number.

Every prompt is the document text, a blank line, then the question, so all
questions about one document share the whole document as a common prefix.
Rows are shuffled with the seed so that no two adjacent rows ask about the
same document (when there is more than one document): the arrival order a
prefix-aware planner has to undo.

Source text (Debian bookworm main, fetched with `apt-get download`, no root
needed, into a cache directory; every .deb sha256-pinned and checked on every
run, unpacked with `dpkg-deb -x`):

- austen: r-cran-janeaustenr 1.0.0-1 (the six novels, public domain; package
  MIT). The novels are read out of the R lazy-load database `data/Rdata.rdb`
  with the standard library (zlib plus a small reader for R's XDR
  serialization format). R is not needed.
- kjv: bible-kjv-text 4.38 (the compressed text `bible.data`, public domain)
  and bible-kjv 4.38 (amd64; the `bible` reader, GPL-2+, needed to decompress
  it). The unpacked reader prints the whole text (`bible -l0
  gen1:1-rev22:21`, run in the unpacked usr/lib); its output is checked
  against a pinned sha256 too. Nothing is installed system-wide.

Token counts are APPROXIMATE: characters / 4.04 for austen, the average number
of characters per SmolLM2 token over that corpus (4,024,948 characters ~ 995k
SmolLM2 tokens), and characters / 3.84 for kjv, measured with `specbatch
plan` on generated KJV documents (one verse per paragraph plus the inserted
sentences tokenize denser than the raw text's 4,298,239 characters ~ 1,081k
tokens). Individual passages deviate by some percent (KJV genealogies, e.g.
1 Chronicles 1, by up to about 25 %); the default --max-context check leaves
a 10 % margin.

Columns: id (string, "austen-d03-q07"; the prefix is the corpus name unless
--prefix), prompt (string), doc_id (string, "austen-d03"), task (string:
needle | vartrack | summary | verse), expected_answer (string, nullable),
max_new_tokens (int32), doc_tokens_approx (int32).

Deterministic: the same arguments (and pyarrow version) give the same bytes.
After writing, the script reads the file back and checks it (self_check);
any failure stops it with an error.

Run from the repository root:  python3 datasets/make_corpus_qa.py
(the defaults write datasets/corpus_qa_sample.parquet, the input of
jobs/corpus_qa.yaml);  python3 datasets/make_corpus_qa.py --corpus kjv --out
/tmp/kjv.parquet  writes a KJV set.
"""

import argparse
import gzip
import hashlib
import io
import os
import platform
import random
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "corpus_qa_sample.parquet"
DEFAULT_CACHE = Path(os.path.expanduser("~/.cache/specbatch/corpora"))

# The pinned source package and the sha256 of its .deb (Debian bookworm main).
AUSTEN_PKG = "r-cran-janeaustenr"
AUSTEN_VERSION = "1.0.0-1"
AUSTEN_DEB_SHA256 = "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95"
AUSTEN_RDB = "usr/lib/R/site-library/janeaustenr/data/Rdata"

# R object name -> title, in the order documents cycle through them.
NOVELS = [
    ("prideprejudice", "Pride and Prejudice"),
    ("emma", "Emma"),
    ("sensesensibility", "Sense and Sensibility"),
    ("persuasion", "Persuasion"),
    ("mansfieldpark", "Mansfield Park"),
    ("northangerabbey", "Northanger Abbey"),
]

# Average characters per SmolLM2 token on this corpus (4,024,948 / ~995k).
CHARS_PER_TOKEN = 4.04

# The King James Bible: the text package and the reader (Debian bookworm main),
# (package, version, architecture, sha256 of the .deb).
KJV_DEBS = [
    ("bible-kjv-text", "4.38", "all", "d61b6aad4c51ba9e2800b825325fa6a09e99a0d02a9bb6dc4724fcc4995a1b7a"),
    ("bible-kjv", "4.38", "amd64", "75a49c032a6efa9faa2beb4a9acb70974380122906329d0e100de36cc88ff02d"),
]
KJV_BIBLE = "usr/bin/bible"
KJV_DATA = "usr/lib/bible.data"
KJV_RANGE = "gen1:1-rev22:21"
# sha256 and length of what `bible -l0 gen1:1-rev22:21` prints.
KJV_TEXT_SHA256 = "6f74f5589333c56c263963e6347dba662bae2d96861302e690aaae0b4a855eda"
KJV_TEXT_CHARS = 4_298_239
# Characters per SmolLM2 token of generated KJV documents (measured with
# `specbatch plan`: 3.77-3.89 on average per set, lower than the raw text's
# 4,298,239 / ~1,081k = 3.98: short verse paragraphs and digit-heavy inserts).
KJV_CHARS_PER_TOKEN = 3.84
KJV_BOOKS = 66
KJV_VERSES = 31_102
VERSE_MAX_CHARS = 300

# Needle keys: a fixed word list; each document draws its keys from it.
KEYS = """
amber anchor apricot atlas badger balcony bamboo beacon beetle biscuit
blossom bonnet bramble bridle bucket cabbage camel candle canyon carpet
cedar chimney cinnamon clover cobalt comet copper cricket crystal dagger
dolphin dragon ember falcon feather ferret fiddle flint fossil galleon
garnet glacier goblet granite harbour harp hazel hedgehog heron honey
indigo ivory jasmine juniper kettle kestrel lantern lemon lily lobster
magnet mango maple marble meadow mitten monsoon mulberry nectar nutmeg
oak olive onyx orchid otter oyster paddle pebble pepper pillow pine
plum quartz quill raven ribbon saddle saffron sapphire scarlet silver
sparrow spruce squirrel thimble thistle tiger topaz tulip velvet violet
walnut willow wizard yarrow zebra
""".split()

QUESTION_NEEDLE = "What is the special magic number for {key}? Answer with the number only."
QUESTION_VARTRACK = (
    "Which variables are assigned the value {value}, directly or through other "
    "variables, in the text above? Answer with the variable names only, separated by spaces."
)
QUESTION_SUMMARY = "Summarize the passage above in three sentences."
QUESTION_VERSE = "Quote {book} {chapter}:{verse} from the passage above."

TASKS = ("needle", "vartrack", "summary", "verse")
MAX_NEW = {"needle": 16, "vartrack": 32, "summary": 96, "verse": 96}
CORPORA = ("austen", "kjv")
DEFAULT_TASKS = {"austen": "needle:4,vartrack:1,summary:1", "kjv": "needle:3,vartrack:1,summary:1,verse:1"}
VAR_CHAIN_LEN = 4

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("prompt", pa.string()),
        ("doc_id", pa.string()),
        ("task", pa.string()),
        ("expected_answer", pa.string()),
        ("max_new_tokens", pa.int32()),
        ("doc_tokens_approx", pa.int32()),
    ]
)


def fail(msg):
    sys.exit(f"make_corpus_qa: {msg}")


# ---------------------------------------------------------------------------
# Fetching the package


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_debs(cache, dirname, debs, markers):
    """Returns `cache/dirname`, the packages `debs` [(package, version, arch,
    sha256)] unpacked together. Each .deb is downloaded into `cache` unless
    already there and its sha256 checked on every call; they are unpacked
    unless every path of `markers` is already there."""
    cache.mkdir(parents=True, exist_ok=True)
    root = cache / dirname
    paths = []
    for pkg, version, arch, sha in debs:
        deb = cache / f"{pkg}_{version}_{arch}.deb"
        if not deb.is_file():
            for tool in ("apt-get", "dpkg-deb"):
                if shutil.which(tool) is None:
                    fail(f"`{tool}` not found; this generator needs a Debian-style system")
            spec = f"{pkg}={version}" if arch == "all" else f"{pkg}:{arch}={version}"
            print(f"downloading {spec} into {cache}", file=sys.stderr)
            r = subprocess.run(
                ["apt-get", "download", spec],
                cwd=cache,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            if r.returncode != 0 or not deb.is_file():
                fail(f"apt-get download {spec} failed (package {pkg}, file {deb.name}):\n{r.stdout}")
        got = sha256_file(deb)
        if got != sha:
            fail(f"{deb}: sha256 {got}, expected {sha} for {pkg} {version}; delete it and retry")
        paths.append(deb)
    if all((root / m).is_file() for m in markers):
        return root
    if shutil.which("dpkg-deb") is None:
        fail("`dpkg-deb` not found; this generator needs a Debian-style system")
    tmp = cache / f".unpack-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for deb in paths:
        r = subprocess.run(
            ["dpkg-deb", "-x", str(deb), str(tmp)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        if r.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            fail(f"dpkg-deb -x {deb} failed:\n{r.stdout}")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return root


def fetch_austen(cache):
    """Returns the folder of the unpacked r-cran-janeaustenr package."""
    return fetch_debs(
        cache,
        f"{AUSTEN_PKG}_{AUSTEN_VERSION}",
        [(AUSTEN_PKG, AUSTEN_VERSION, "all", AUSTEN_DEB_SHA256)],
        [AUSTEN_RDB + ".rdb", AUSTEN_RDB + ".rdx"],
    )


# ---------------------------------------------------------------------------
# A small reader for R's XDR serialization (format versions 2 and 3): enough
# for character vectors, lists, pairlists, data frames and their attributes.

NILVALUE, GLOBALENV, UNBOUNDVALUE, MISSINGARG, BASENAMESPACE = 254, 253, 252, 251, 250
EMPTYENV, BASEENV, REFSXP, ALTREP = 242, 241, 255, 238
SYMSXP, LISTSXP, LANGSXP, CHARSXP = 1, 2, 6, 9
LGLSXP, INTSXP, REALSXP, STRSXP, VECSXP, EXPRSXP = 10, 13, 14, 16, 19, 20
NA_INTEGER = -(2**31)


class RSymbol(str):
    pass


class RVector(list):
    """An R vector (list of Python values) with its attributes."""

    def __init__(self, items, attrs=None):
        super().__init__(items)
        self.attrs = attrs or {}


class RReader:
    def __init__(self, data):
        self.buf = io.BytesIO(data)
        self.refs = []
        if self.buf.read(2) != b"X\n":
            raise ValueError("not an XDR R serialization")
        version = self.int()
        self.int()  # writer's R version
        self.int()  # minimal reader version
        if version == 3:
            self.buf.read(self.int())  # native encoding name
        elif version != 2:
            raise ValueError(f"unsupported serialization version {version}")

    def int(self):
        return struct.unpack(">i", self.buf.read(4))[0]

    def length(self):
        n = self.int()
        if n == -1:
            hi, lo = self.int(), self.int()
            n = (hi << 32) + lo
        return n

    def attributes(self, has_attr):
        if not has_attr:
            return {}
        pl = self.item()
        return dict(pl) if isinstance(pl, list) else {}

    def pairlist(self, flags):
        """LISTSXP / LANGSXP cells, iteratively along CDR: [(tag, value)]."""
        out = []
        while True:
            has_attr, has_tag = flags & (1 << 9), flags & (1 << 10)
            if has_attr:
                self.item()
            tag = self.item() if has_tag else None
            out.append((tag, self.item()))
            flags = self.int()
            if flags & 0xFF not in (LISTSXP, LANGSXP):
                self.buf.seek(-4, io.SEEK_CUR)
                self.item()  # the terminating CDR (normally NULL)
                return out

    def item(self):
        flags = self.int()
        t = flags & 0xFF
        has_attr = flags & (1 << 9)
        if t in (NILVALUE, EMPTYENV, BASEENV, GLOBALENV, UNBOUNDVALUE, MISSINGARG, BASENAMESPACE):
            return None
        if t == REFSXP:
            idx = flags >> 8
            if idx == 0:
                idx = self.int()
            return self.refs[idx - 1]
        if t == SYMSXP:
            sym = RSymbol(self.item())
            self.refs.append(sym)
            return sym
        if t in (LISTSXP, LANGSXP):
            return self.pairlist(flags)
        if t == CHARSXP:
            n = self.int()
            if n == -1:
                return None
            return self.buf.read(n).decode("utf-8", errors="replace")
        if t in (LGLSXP, INTSXP):
            n = self.length()
            vals = list(struct.unpack(f">{n}i", self.buf.read(4 * n)))
            vals = [None if v == NA_INTEGER else v for v in vals]
            return RVector(vals, self.attributes(has_attr))
        if t == REALSXP:
            n = self.length()
            return RVector(struct.unpack(f">{n}d", self.buf.read(8 * n)), self.attributes(has_attr))
        if t in (STRSXP, VECSXP, EXPRSXP):
            n = self.length()
            items = [self.item() for _ in range(n)]
            return RVector(items, self.attributes(has_attr))
        if t == ALTREP:
            info = self.item()
            state = self.item()
            attrs = self.item()
            kind = info[0][1] if info else None
            if kind in ("compact_intseq", "compact_realseq"):
                n, start, step = int(state[0]), state[1], state[2]
                vals = [start + i * step for i in range(n)]
                if kind == "compact_intseq":
                    vals = [int(v) for v in vals]
                return RVector(vals, dict(attrs) if isinstance(attrs, list) else {})
            if kind == "wrap_string" or kind == "wrap_integer" or kind == "wrap_real":
                return state[0]
            raise ValueError(f"unsupported ALTREP class {kind}")
        raise ValueError(f"unsupported R SEXP type {t}")


def read_lazyload_db(prefix):
    """Reads every variable of an R lazy-load database (`prefix.rdx` index,
    `prefix.rdb` blobs: 4-byte big-endian length + zlib stream each)."""
    index = RReader(gzip.open(str(prefix) + ".rdx").read()).item()
    names = index.attrs["names"]
    variables = index[names.index("variables")]
    blob = Path(str(prefix) + ".rdb").read_bytes()
    out = {}
    for name, (offset, length) in zip(variables.attrs["names"], variables):
        raw = blob[offset : offset + length]
        data = zlib.decompress(raw[4:])
        if len(data) != struct.unpack(">I", raw[:4])[0]:
            raise ValueError(f"{prefix}.rdb: bad length for {name}")
        out[name] = RReader(data).item()
    return out


def load_austen(cache):
    root = fetch_austen(cache)
    objs = read_lazyload_db(root / AUSTEN_RDB)
    novels = {}
    for name, title in NOVELS:
        lines = objs.get(name)
        if not isinstance(lines, list) or not all(isinstance(s, str) for s in lines):
            fail(f"{AUSTEN_PKG}: object `{name}` is not a character vector")
        novels[name] = [s.strip() for s in lines]
    return novels


def fetch_kjv(cache):
    """Returns the folder where bible-kjv-text and bible-kjv are unpacked."""
    if platform.machine() not in ("x86_64", "AMD64"):
        fail(f"--corpus kjv runs the amd64 `bible` reader of bible-kjv; this machine is {platform.machine()}")
    version = KJV_DEBS[0][1]
    return fetch_debs(cache, f"bible-kjv_{version}", KJV_DEBS, [KJV_BIBLE, KJV_DATA, KJV_DATA + ".conc"])


def load_kjv(cache):
    """The whole King James Bible as printed by the unpacked `bible` reader:
    {book: [(chapter, verse, text)]}, books in canonical order."""
    root = fetch_kjv(cache)
    lib = root / "usr/lib"
    # Run in the data folder with `-p .`: the search path is space-separated,
    # so the cache path itself is never passed.
    try:
        r = subprocess.run(
            [str(root / KJV_BIBLE), "-p", ".", "-l0", KJV_RANGE],
            cwd=lib,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as e:
        fail(f"bible-kjv: cannot run {root / KJV_BIBLE}: {e}")
    if r.returncode != 0:
        fail(f"bible-kjv: `bible -l0 {KJV_RANGE}` exited {r.returncode}: {r.stderr.decode(errors='replace')}")
    got = hashlib.sha256(r.stdout).hexdigest()
    if got != KJV_TEXT_SHA256:
        fail(
            f"bible-kjv: the text printed by {root / KJV_BIBLE} ({len(r.stdout)} bytes) has sha256 {got}, "
            f"expected {KJV_TEXT_SHA256} ({KJV_TEXT_CHARS} bytes); delete {root} and retry"
        )
    books, book, chapter = {}, None, None
    for line in r.stdout.decode("ascii").split("\n"):
        if not line:
            continue
        m = re.fullmatch(r"  ([0-9]+) (.+)", line)
        if m:
            if book is None:
                fail(f"bible-kjv: verse before the first heading: {line!r}")
            books[book].append((chapter, int(m.group(1)), m.group(2).strip()))
            continue
        m = re.fullmatch(r"([1-3A-Z][A-Za-z ]*) ([0-9]+)", line)
        if not m:
            fail(f"bible-kjv: unexpected line {line!r}")
        book, chapter = m.group(1), int(m.group(2))
        books.setdefault(book, [])
    if len(books) != KJV_BOOKS or sum(map(len, books.values())) != KJV_VERSES:
        fail(f"bible-kjv: {len(books)} books, {sum(map(len, books.values()))} verses; expected {KJV_BOOKS}, {KJV_VERSES}")
    return books


def kjv_paragraphs(book, verses):
    """Like paragraphs(): the chapter headings ("Genesis 1") and the verses
    ("1 In the beginning ...") as paragraphs, the heading indices, the whole
    text; plus {paragraph index: (chapter, verse, verse text)}."""
    paras, heads, refs, chapter = [], [], {}, None
    for c, v, text in verses:
        if c != chapter:
            heads.append(len(paras))
            paras.append(f"{book} {c}")
            chapter = c
        refs[len(paras)] = (c, v, text)
        paras.append(f"{v} {text}")
    return paras, heads, "\n".join(paras), refs


# ---------------------------------------------------------------------------
# Documents

CHAPTER = re.compile(r"^(CHAPTER|Chapter) [0-9IVXLC]+\.?$")


def paragraphs(lines):
    """Blank-line separated paragraphs, each reflowed to one line, the
    indices of the paragraphs that are chapter headings, and the whole text
    (to keep inserted names and numbers out of it)."""
    paras, cur = [], []
    for line in lines + [""]:
        if line:
            cur.append(line)
        elif cur:
            paras.append(" ".join(cur))
            cur = []
    heads = [i for i, p in enumerate(paras) if CHAPTER.match(p)]
    return paras, heads, "\n".join(paras)


def take_passage(paras, start, budget, cut=True):
    """Paragraphs from `start` until `budget` characters (joined by blank
    lines); with `cut`, the last paragraph may be cut at a sentence end."""
    out, used = [], 0
    i = start
    while i < len(paras):
        p = paras[i]
        extra = len(p) + (2 if out else 0)
        if used + extra <= budget:
            out.append(p)
            used += extra
            i += 1
            continue
        room = budget - used - 2
        if cut and room > 80:
            sentences = re.split(r"(?:(?<=[.!?])|(?<=[.!?][\"'])) +(?=[A-Z\"'])", p)
            part = ""
            for s in sentences:
                if len(part) + len(s) + 1 > room:
                    break
                part = (part + " " + s).strip()
            if part:
                out.append(part)
        break
    return out


def random_name(rng, used, novel_text):
    while True:
        name = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(5))
        if name not in used and name not in novel_text:
            used.add(name)
            return name


def task_counts(questions, weights):
    """Splits `questions` among tasks in proportion to `weights`
    (largest remainder; ties in task order)."""
    total = sum(weights.values())
    exact = {t: questions * w / total for t, w in weights.items()}
    counts = {t: int(v) for t, v in exact.items()}
    rest = questions - sum(counts.values())
    order = sorted(weights, key=lambda t: (-(exact[t] - counts[t]), TASKS.index(t)))
    for t in order[:rest]:
        counts[t] += 1
    return counts


def build_document(rng, novels, novel, head, target_tokens, counts, doc_id, cpt):
    """Returns (document text, [question dicts]). `novels[novel]` is
    (paragraphs, heading indices, whole text, verse references or None);
    `cpt` the corpus's characters per token."""
    paras, heads, novel_text, refs = novels[novel]
    questions = []
    inserts = []  # (depth in [0, 1), order, sentence)

    used_keys = set()
    for _ in range(counts.get("needle", 0)):
        key = rng.choice([k for k in KEYS if k not in used_keys])
        used_keys.add(key)
        number = str(rng.randrange(1_000_000, 10_000_000))
        while number in novel_text:
            number = str(rng.randrange(1_000_000, 10_000_000))
        depth = rng.random()
        inserts.append((depth, len(inserts), f"The special magic number for {key} is {number}."))
        questions.append(
            {
                "task": "needle",
                "question": QUESTION_NEEDLE.format(key=key),
                "expected_answer": number,
                "needle": f"The special magic number for {key} is {number}.",
            }
        )

    used_names, used_values = set(), set()
    for _ in range(counts.get("vartrack", 0)):
        # Unique in the document: not in the novel, not inside a needle number.
        numbers = [q["expected_answer"] for q in questions]
        value = rng.randrange(10_000, 100_000)
        while value in used_values or str(value) in novel_text or any(str(value) in n for n in numbers):
            value = rng.randrange(10_000, 100_000)
        used_values.add(value)
        names = [random_name(rng, used_names, novel_text) for _ in range(VAR_CHAIN_LEN)]
        depths = sorted(rng.random() for _ in names)
        for j, (name, depth) in enumerate(zip(names, depths)):
            rhs = str(value) if j == 0 else f"VAR {names[j - 1]}"
            inserts.append((depth, len(inserts), f"VAR {name} = {rhs} ."))
        questions.append(
            {
                "task": "vartrack",
                "question": QUESTION_VARTRACK.format(value=value),
                "expected_answer": " ".join(names),
                "names": names,
                "value": str(value),
            }
        )

    for _ in range(counts.get("summary", 0)):
        questions.append({"task": "summary", "question": QUESTION_SUMMARY, "expected_answer": None})

    budget = int(target_tokens * cpt) - sum(len(s) + 2 for _, _, s in inserts)
    # Verses are never cut: body[i] is then paras[head + i].
    body = take_passage(paras, head, max(budget, 200), cut=refs is None)
    if refs is not None and len(body) < 2:
        body = paras[head : head + 2]  # at least the heading and one verse
    # Insert each sentence as its own paragraph at the paragraph boundary
    # nearest its depth (never before the chapter heading).
    slots = {}
    for depth, order, sentence in sorted(inserts):
        pos = min(len(body), max(1, round(depth * len(body))))
        slots.setdefault(pos, []).append(sentence)
    parts = []
    for i, p in enumerate(body):
        parts.extend(slots.get(i, []))
        parts.append(p)
    parts.extend(slots.get(len(body), []))
    text = "\n\n".join(parts)

    n_verse = counts.get("verse", 0)
    if n_verse:
        if refs is None:
            fail("the verse task needs --corpus kjv")
        # Verses of the document, not too long to quote in MAX_NEW tokens,
        # whose text occurs once in it (no repeated or embedded verses).
        cands = [
            i
            for i, p in enumerate(body)
            if head + i in refs
            and len(refs[head + i][2]) <= VERSE_MAX_CHARS
            and text.count(refs[head + i][2]) == 1
        ]
        if len(cands) < n_verse:
            fail(
                f"{doc_id}: only {len(cands)} quotable verses (unique, at most {VERSE_MAX_CHARS} characters) "
                f"for {n_verse} verse questions; use longer documents or fewer verse questions"
            )
        for i in sorted(rng.sample(cands, n_verse)):
            chapter, verse, verse_text = refs[head + i]
            questions.append(
                {
                    "task": "verse",
                    "question": QUESTION_VERSE.format(book=novel, chapter=chapter, verse=verse),
                    "expected_answer": verse_text,
                    "ref": (novel, chapter, verse),
                }
            )
    return text, questions


def feasible(rem, last):
    total = sum(rem.values())
    return all(c <= (total + 1) // 2 for c in rem.values()) and rem.get(last, 0) <= total // 2


def arrival_order(rng, rows):
    """Shuffles rows so that no two adjacent rows share a doc_id (if the doc
    counts allow it), choosing uniformly among the documents that keep the
    rest arrangeable."""
    by_doc = {}
    for r in rows:
        by_doc.setdefault(r["doc_id"], []).append(r)
    for qs in by_doc.values():
        rng.shuffle(qs)
    rem = {d: len(qs) for d, qs in by_doc.items()}
    if not feasible(rem, None):
        out = list(rows)
        rng.shuffle(out)
        return out
    out, last = [], None
    while any(rem.values()):
        cands = []
        for d in sorted(rem):
            if rem[d] == 0 or d == last:
                continue
            rem[d] -= 1
            if feasible(rem, d):
                cands.append(d)
            rem[d] += 1
        d = rng.choice(cands)
        rem[d] -= 1
        out.append(by_doc[d][rem[d]])
        last = d
    return out


def load_corpus(args):
    """({name: (paragraphs, heading indices, whole text, verse references or
    None)}, names in the order documents cycle through them)."""
    if args.corpus == "kjv":
        books = load_kjv(args.cache_dir)
        return {book: kjv_paragraphs(book, verses) for book, verses in books.items()}, list(books)
    novels = load_austen(args.cache_dir)
    return {name: paragraphs(lines) + (None,) for name, lines in novels.items()}, [n for n, _ in NOVELS]


def generate(args, corpus):
    rng = random.Random(args.seed)
    counts = task_counts(args.questions, args.tasks)
    parsed, names = corpus
    names = list(names)
    if args.corpus == "kjv":
        rng.shuffle(names)  # books in a seeded order, not Genesis, Exodus, ...
    # Characters from each paragraph to the end of its novel.
    tail = {}
    for name, (paras, _, _, _) in parsed.items():
        acc, t = 0, [0] * len(paras)
        for i in range(len(paras) - 1, -1, -1):
            acc += len(paras[i]) + 2
            t[i] = acc
        tail[name] = t
    taken = set()
    docs, rows = [], []
    for d in range(args.docs):
        target = rng.randint(args.min_tokens, args.max_tokens)
        # Novels in turn; a chapter start not used yet with enough text after it.
        for k in range(len(names)):
            novel = names[(d + k) % len(names)]
            heads = [
                h
                for h in parsed[novel][1]
                if (novel, h) not in taken and tail[novel][h] >= target * args.cpt
            ]
            if heads:
                break
        else:
            fail(f"no unused chapter start left with ~{target} tokens of text after it")
        head = rng.choice(heads)
        taken.add((novel, head))
        doc_id = f"{args.prefix}-d{d:02d}"
        text, questions = build_document(rng, parsed, novel, head, target, counts, doc_id, args.cpt)
        approx = round(len(text) / args.cpt)
        docs.append({"doc_id": doc_id, "text": text, "novel": novel, "head": head, "questions": questions})
        for q_i, q in enumerate(questions):
            q["id"] = f"{doc_id}-q{q_i:02d}"
            rows.append(
                {
                    "id": q["id"],
                    "prompt": text + "\n\n" + q["question"],
                    "doc_id": doc_id,
                    "task": q["task"],
                    "expected_answer": q["expected_answer"],
                    "max_new_tokens": MAX_NEW[q["task"]],
                    "doc_tokens_approx": approx,
                }
            )
    return docs, arrival_order(rng, rows)


def to_parquet_bytes(rows):
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", row_group_size=64)
    return sink.getvalue()


# ---------------------------------------------------------------------------
# Self-check


def self_check(path, docs, args):
    """Reads the written file back and checks it; raises on any problem."""
    errors = []
    parsed = args.corpus_data[0]

    def check(cond, msg):
        if not cond:
            errors.append(msg)

    table = pq.read_table(path)
    check(table.schema.equals(SCHEMA), f"schema {table.schema} != {SCHEMA}")
    rows = table.to_pylist()
    check(len(rows) == args.docs * args.questions, f"{len(rows)} rows, expected {args.docs * args.questions}")
    check(len({r["id"] for r in rows}) == len(rows), "duplicate ids")
    by_id = {d["doc_id"]: d for d in docs}
    for r in rows:
        doc = by_id.get(r["doc_id"])
        if doc is None:
            check(False, f"{r['id']}: unknown doc_id {r['doc_id']}")
            continue
        text = doc["text"]
        q = next(q for q in doc["questions"] if q["id"] == r["id"])
        check(r["prompt"] == text + "\n\n" + q["question"], f"{r['id']}: prompt is not document + blank line + question")
        check(r["prompt"].startswith(text + "\n\n"), f"{r['id']}: prompt does not start with its document")
        check(r["task"] in TASKS, f"{r['id']}: bad task {r['task']}")
        check(r["max_new_tokens"] == MAX_NEW[r["task"]], f"{r['id']}: max_new_tokens")
        check(r["doc_tokens_approx"] == round(len(text) / args.cpt), f"{r['id']}: doc_tokens_approx")
        need = r["doc_tokens_approx"] * 1.1 + 64 + r["max_new_tokens"]
        check(need <= args.max_context, f"{r['id']}: ~{need:.0f} tokens may not fit a {args.max_context} context")
        if r["task"] == "needle":
            check(text.count(q["needle"]) == 1, f"{r['id']}: needle occurs {text.count(q['needle'])} times")
            check(text.count(r["expected_answer"]) == 1, f"{r['id']}: answer number not unique in the document")
            check(re.fullmatch(r"[0-9]{7}", r["expected_answer"] or "") is not None, f"{r['id']}: bad needle answer")
        elif r["task"] == "vartrack":
            names = q["names"]
            check(r["expected_answer"] == " ".join(names), f"{r['id']}: vartrack answer")
            check(text.count(q["value"]) == 1, f"{r['id']}: value {q['value']} not unique in the document")
            pos = [text.find(f"VAR {n} = ") for n in names]
            check(all(text.count(f"VAR {n} = ") == 1 for n in names), f"{r['id']}: a variable is assigned twice")
            check(pos == sorted(pos) and min(pos) >= 0, f"{r['id']}: chain not in reading order")
        elif r["task"] == "verse":
            book, chapter, verse = q["ref"]
            answer = r["expected_answer"] or ""
            source = {(c, v): t for c, v, t in parsed[book][3].values()} if parsed[book][3] else {}
            check(source.get((chapter, verse)) == answer, f"{r['id']}: answer is not {book} {chapter}:{verse}")
            check(r["prompt"].endswith(QUESTION_VERSE.format(book=book, chapter=chapter, verse=verse)), f"{r['id']}: verse question")
            check(text.count(answer) == 1, f"{r['id']}: verse text not unique in the document")
            check(len(answer) <= VERSE_MAX_CHARS, f"{r['id']}: verse longer than {VERSE_MAX_CHARS} characters")
            # The verse paragraph, under its own chapter heading, once.
            heading, hits = None, 0
            for para in text.split("\n\n"):
                if re.fullmatch(re.escape(book) + r" [0-9]+", para):
                    heading = para
                elif heading == f"{book} {chapter}" and para == f"{verse} {answer}":
                    hits += 1
            check(hits == 1, f"{r['id']}: {book} {chapter}:{verse} is {hits} times under its heading")
        else:
            check(r["expected_answer"] is None, f"{r['id']}: summary with an expected answer")
    # Each document: consecutive paragraphs of one novel or book from a
    # chapter heading, plus the inserted sentences (for austen the last
    # paragraph may be cut; kjv verses never are).
    for doc in docs:
        paras = parsed[doc["novel"]][0]
        inserted = sum(
            1 for q in doc["questions"] if q["task"] == "needle"
        ) + VAR_CHAIN_LEN * sum(1 for q in doc["questions"] if q["task"] == "vartrack")
        all_paras = doc["text"].split("\n\n")
        own = [
            p
            for p in all_paras
            if not p.startswith("The special magic number for ")
            and not re.fullmatch(r"VAR [A-Z]{5} = (?:[0-9]{5}|VAR [A-Z]{5}) \.", p)
        ]
        h = doc["head"]
        n_ins = len(all_paras) - len(own)
        check(n_ins == inserted, f"{doc['doc_id']}: {n_ins} inserted paragraphs, expected {inserted}")
        check(h in parsed[doc["novel"]][1] and own[:1] == [paras[h]], f"{doc['doc_id']}: does not start at a chapter heading")
        exact = own if args.corpus == "kjv" else own[:-1]
        check(exact == paras[h : h + len(exact)], f"{doc['doc_id']}: not consecutive paragraphs of {doc['novel']}")
    docs_seq = [r["doc_id"] for r in rows]
    if len(by_id) > 1:
        adjacent = sum(a == b for a, b in zip(docs_seq, docs_seq[1:]))
        check(adjacent == 0, f"{adjacent} adjacent rows share a document")
    # Same arguments, same bytes.
    _, again = generate(args, args.corpus_data)
    check(to_parquet_bytes(again) == Path(path).read_bytes(), "a second generation gave different bytes")
    if errors:
        raise AssertionError("self-check failed:\n  " + "\n  ".join(errors[:20]))
    return rows


# ---------------------------------------------------------------------------


def parse_tasks(s):
    weights = {}
    for part in s.split(","):
        name, _, w = part.partition(":")
        name = name.strip()
        if name not in TASKS:
            raise argparse.ArgumentTypeError(f"unknown task `{name}` (use {', '.join(TASKS)})")
        try:
            weights[name] = int(w) if w else 1
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad weight in `{part}`")
        if weights[name] < 0:
            raise argparse.ArgumentTypeError(f"negative weight in `{part}`")
    if not sum(weights.values()):
        raise argparse.ArgumentTypeError("all task weights are zero")
    return weights


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=4, help="number of documents (default 4)")
    ap.add_argument("--questions", type=int, default=6, help="questions per document (default 6)")
    ap.add_argument("--min-tokens", type=int, default=1000, help="shortest document, approx. tokens")
    ap.add_argument("--max-tokens", type=int, default=2000, help="longest document, approx. tokens")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument(
        "--corpus",
        choices=CORPORA,
        default="austen",
        help="source text: austen (Jane Austen's novels, default) or kjv (the King James Bible)",
    )
    ap.add_argument(
        "--tasks",
        type=parse_tasks,
        default=None,
        help=(
            "task mix per document as name:weight,... (default "
            + "; ".join(f"{c}: {t}" for c, t in DEFAULT_TASKS.items())
            + "; verse is kjv only)"
        ),
    )
    ap.add_argument("--max-context", type=int, default=8192, help="model context the rows must fit (default 8192)")
    ap.add_argument("--prefix", default=None, help="id prefix (default: the corpus name, austen or kjv)")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    if args.tasks is None:
        args.tasks = parse_tasks(DEFAULT_TASKS[args.corpus])
    if args.tasks.get("verse") and args.corpus != "kjv":
        ap.error("the verse task needs --corpus kjv")
    if args.prefix is None:
        args.prefix = args.corpus
    args.cpt = KJV_CHARS_PER_TOKEN if args.corpus == "kjv" else CHARS_PER_TOKEN
    if args.docs < 1 or args.questions < 1:
        ap.error("--docs and --questions must be at least 1")
    if not 100 <= args.min_tokens <= args.max_tokens:
        ap.error("need 100 <= --min-tokens <= --max-tokens")
    if args.max_tokens * 1.1 + 64 + max(MAX_NEW.values()) > args.max_context:
        ap.error(f"--max-tokens {args.max_tokens} leaves no safe room in a {args.max_context}-token context")

    args.corpus_data = load_corpus(args)
    docs, rows = generate(args, args.corpus_data)
    data = to_parquet_bytes(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    self_check(args.out, docs, args)
    shown = [t for t in TASKS if t != "verse" or args.corpus == "kjv"]
    tasks = {t: sum(r["task"] == t for r in rows) for t in shown}
    lens = [round(len(d["text"]) / args.cpt) for d in docs]
    print(
        f"wrote {len(rows)} rows ({len(docs)} documents of ~{min(lens)}-{max(lens)} tokens; "
        f"{', '.join(f'{t} {n}' for t, n in tasks.items())}) to {args.out} ({len(data)} bytes); self-check ok"
    )


if __name__ == "__main__":
    main()
