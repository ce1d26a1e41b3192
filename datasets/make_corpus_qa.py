# requires: pyarrow==18.1.0
"""Writes a corpus-QA / summarization dataset: long shared documents, many
questions each, rows in shuffled arrival order.

Each document is a contiguous passage of a Jane Austen novel (starting at a
chapter heading), of a chosen approximate token length, with synthetic,
exactly checkable facts inserted at chosen depths, in the style of the RULER
long-context suite:

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

Every prompt is the document text, a blank line, then the question, so all
questions about one document share the whole document as a common prefix.
Rows are shuffled with the seed so that no two adjacent rows ask about the
same document (when there is more than one document): the arrival order a
prefix-aware planner has to undo.

Source text: the Debian package r-cran-janeaustenr 1.0.0-1 (the six novels,
public domain; package MIT). The generator downloads it with `apt-get
download` (no root needed) into a cache directory, checks its sha256, unpacks
it with `dpkg-deb -x` and reads the novels out of the R lazy-load database
`data/Rdata.rdb` with the standard library (zlib plus a small reader for R's
XDR serialization format). R is not needed.

Token counts are APPROXIMATE: characters / 4.04, the average number of
characters per SmolLM2 token over this corpus (4,024,948 characters ~ 995k
SmolLM2 tokens). Individual passages deviate by some percent; the default
--max-context check leaves a 10 % margin.

Columns: id (string, "austen-d03-q07"), prompt (string), doc_id (string,
"austen-d03"), task (string: needle | vartrack | summary), expected_answer
(string, nullable), max_new_tokens (int32), doc_tokens_approx (int32).

Deterministic: the same arguments (and pyarrow version) give the same bytes.
After writing, the script reads the file back and checks it (self_check);
any failure stops it with an error.

Run from the repository root:  python3 datasets/make_corpus_qa.py
(the defaults write datasets/corpus_qa_sample.parquet, the input of
jobs/corpus_qa.yaml).
"""

import argparse
import gzip
import hashlib
import io
import os
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
AUSTEN_DEB = f"{AUSTEN_PKG}_{AUSTEN_VERSION}_all.deb"
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

TASKS = ("needle", "vartrack", "summary")
MAX_NEW = {"needle": 16, "vartrack": 32, "summary": 96}
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


def fetch_austen(cache):
    """Returns the folder of the unpacked r-cran-janeaustenr package,
    downloading and unpacking it into `cache` unless already there."""
    cache.mkdir(parents=True, exist_ok=True)
    root = cache / f"{AUSTEN_PKG}_{AUSTEN_VERSION}"
    if (root / (AUSTEN_RDB + ".rdb")).is_file():
        return root
    deb = cache / AUSTEN_DEB
    if not deb.is_file():
        for tool in ("apt-get", "dpkg-deb"):
            if shutil.which(tool) is None:
                fail(f"`{tool}` not found; this generator needs a Debian-style system")
        print(f"downloading {AUSTEN_PKG}={AUSTEN_VERSION} into {cache}", file=sys.stderr)
        r = subprocess.run(
            ["apt-get", "download", f"{AUSTEN_PKG}={AUSTEN_VERSION}"],
            cwd=cache,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if r.returncode != 0 or not deb.is_file():
            fail(f"apt-get download {AUSTEN_PKG}={AUSTEN_VERSION} failed:\n{r.stdout}")
    got = sha256_file(deb)
    if got != AUSTEN_DEB_SHA256:
        fail(f"{deb}: sha256 {got}, expected {AUSTEN_DEB_SHA256}; delete it and retry")
    tmp = cache / f".unpack-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return root


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


def take_passage(paras, start, budget):
    """Paragraphs from `start` until `budget` characters (joined by blank
    lines); the last paragraph may be cut at a sentence end."""
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
        if room > 80:
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


def build_document(rng, novels, novel, head, target_tokens, counts, doc_id):
    """Returns (document text, [question dicts])."""
    paras, heads, novel_text = novels[novel]
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

    budget = int(target_tokens * CHARS_PER_TOKEN) - sum(len(s) + 2 for _, _, s in inserts)
    body = take_passage(paras, head, max(budget, 200))
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
    return "\n\n".join(parts), questions


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


def generate(args, novels):
    rng = random.Random(args.seed)
    counts = task_counts(args.questions, args.tasks)
    parsed = {name: paragraphs(lines) for name, lines in novels.items()}
    # Characters from each paragraph to the end of its novel.
    tail = {}
    for name, (paras, _, _) in parsed.items():
        acc, t = 0, [0] * len(paras)
        for i in range(len(paras) - 1, -1, -1):
            acc += len(paras[i]) + 2
            t[i] = acc
        tail[name] = t
    names = [n for n, _ in NOVELS]
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
                if (novel, h) not in taken and tail[novel][h] >= target * CHARS_PER_TOKEN
            ]
            if heads:
                break
        else:
            fail(f"no unused chapter start left with ~{target} tokens of text after it")
        head = rng.choice(heads)
        taken.add((novel, head))
        doc_id = f"{args.prefix}-d{d:02d}"
        text, questions = build_document(rng, parsed, novel, head, target, counts, doc_id)
        approx = round(len(text) / CHARS_PER_TOKEN)
        docs.append({"doc_id": doc_id, "text": text, "novel": novel, "questions": questions})
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
        check(r["doc_tokens_approx"] == round(len(text) / CHARS_PER_TOKEN), f"{r['id']}: doc_tokens_approx")
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
        else:
            check(r["expected_answer"] is None, f"{r['id']}: summary with an expected answer")
    docs_seq = [r["doc_id"] for r in rows]
    if len(by_id) > 1:
        adjacent = sum(a == b for a, b in zip(docs_seq, docs_seq[1:]))
        check(adjacent == 0, f"{adjacent} adjacent rows share a document")
    # Same arguments, same bytes.
    _, again = generate(args, args.novels)
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
        "--tasks",
        type=parse_tasks,
        default=parse_tasks("needle:4,vartrack:1,summary:1"),
        help="task mix per document as name:weight,... (default needle:4,vartrack:1,summary:1)",
    )
    ap.add_argument("--max-context", type=int, default=8192, help="model context the rows must fit (default 8192)")
    ap.add_argument("--prefix", default="austen", help="id prefix (default austen)")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    if args.docs < 1 or args.questions < 1:
        ap.error("--docs and --questions must be at least 1")
    if not 100 <= args.min_tokens <= args.max_tokens:
        ap.error("need 100 <= --min-tokens <= --max-tokens")
    if args.max_tokens * 1.1 + 64 + max(MAX_NEW.values()) > args.max_context:
        ap.error(f"--max-tokens {args.max_tokens} leaves no safe room in a {args.max_context}-token context")

    args.novels = load_austen(args.cache_dir)
    docs, rows = generate(args, args.novels)
    data = to_parquet_bytes(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    self_check(args.out, docs, args)
    tasks = {t: sum(r["task"] == t for r in rows) for t in TASKS}
    lens = [round(len(d["text"]) / CHARS_PER_TOKEN) for d in docs]
    print(
        f"wrote {len(rows)} rows ({len(docs)} documents of ~{min(lens)}-{max(lens)} tokens; "
        f"{', '.join(f'{t} {n}' for t, n in tasks.items())}) to {args.out} ({len(data)} bytes); self-check ok"
    )


if __name__ == "__main__":
    main()
