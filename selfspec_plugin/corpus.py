"""A corpus of one's own documents: a folder or glob of Markdown, text, HTML and PDF files (and .jsonl/.parquet
records), extracted into sections and cut into chunks bounded in the generator's own tokens.

    files -> sections -> chunks
    a section: a PDF page, a Markdown or HTML section (under its headings), a whole .txt file, one record
    a chunk:   {id, text, source, page | section | record, start, end} at most `chunk_tokens` tokens long;
               start/end are character offsets in the extracted text of its page (PDF), its file (.md, .txt,
               .html) or its record

A chunk's id is `source#p3-<hex>` (a PDF page), `source#<section-slug>-<hex>` or `source#<record id>` (a single
record file's: `<record id>`, or `<record id>-<hex>` when cut): the hex is a hash of the source, place and text,
so the same files give the same ids run after run, and a triplet's `docs` names the file and page it was grounded
on. A section longer than a chunk is cut at a paragraph break, else a sentence end, else between words, in the
second half of the window (why: a chunk that stops mid-sentence gives the model half a fact), and the next chunk
repeats the last `chunk_overlap` tokens.

A single .jsonl, .parquet or .txt file without `chunk_tokens` is read as records (retrieval.load_corpus): one record
(one line of a .txt) is one document, whole, with its own id, and the run key hashes the file.

Bad files (docs/architecture.md, "Corpus files"): in a folder or glob a file that cannot give text is skipped
and counted with its reason (`selfspec corpus inspect` lists them, a run prints them), so one broken PDF does not
stop a run over a hundred good ones; a malformed .jsonl or .parquet (structured data, a user's own export) is an
error naming the file and line (structured data is not a found document: a bad line is the user's to
fix); a corpus with no text left is an error listing every skip. All of it
happens before the run's folder is written.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SelfSpecError
from .fileio import check_file, jsonl_objects, resolved_note, sha256_file, text_lines

DOCUMENTS = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".html": "html", ".htm": "html", ".pdf": "pdf"}
RECORDS = (".jsonl", ".parquet")
# A document file past this is skipped: a 30-page PDF is ~1 MiB, and pypdf holds a whole file in memory.
MAX_FILE_BYTES = 64 << 20
# Document files are cut at this many tokens when `chunk_tokens` is unset: three such chunks leave a 2k-token
# context room for the demos and the answer, and on PubMedQA's abstracts (313 tokens median) they lose under a
# point of recall@3 against whole abstracts (docs/benchmarks.md, B9).
DEFAULT_CHUNK_TOKENS = 256
DEFAULT_CHUNK_OVERLAP = 32
# Hashed into the run key of a folder corpus with the extracted text: bump it when extraction or chunking
# changes what the same files give.
CHUNKER_VERSION = 1
# Removed from an HTML page before its text is taken: scripts, styles and a site's navigation are not content.
HTML_DROP = ("script", "style", "noscript", "template", "svg", "nav", "header", "footer", "aside", "form")
HTML_BLOCKS = ("p", "div", "li", "br", "tr", "pre", "blockquote", "section", "article", "table", "dd", "dt", "td")


class Skip(Exception):
    """A file that gives no text, and why (counted, not fatal)."""


@dataclass
class Corpus:
    """What a corpus spec holds: its sections, the files it read, and every file it skipped with the reason."""

    spec: str
    sections: list[dict] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    records: bool = False  # a single .jsonl/.parquet/.txt of records: whole records, with their own ids


def is_record_file(spec: str | Path) -> bool:
    """A single .jsonl, .parquet or .txt corpus file, read one record (line) per document."""
    path = Path(spec)
    return path.is_file() and path.suffix.lower() not in (".md", ".markdown", ".html", ".htm", ".pdf")


def corpus_files(spec: str) -> list[tuple[Path, str]]:
    """(file, name) for a file, a folder (recursively) or a glob, in name order; the name is relative to the folder
    or to the glob's fixed part. Hidden files and folders (.git, .DS_Store) are left out."""
    path = Path(spec)
    if path.is_file():
        return [(path, path.name)]
    if path.is_dir():
        root, found = path, [p for p in path.rglob("*") if p.is_file()]
    elif glob.has_magic(spec):
        fixed = [part for part in path.parts[: next(i for i, p in enumerate(path.parts) if glob.has_magic(p))]]
        root = Path(*fixed) if fixed else Path(".")
        found = [Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file()]
        if not found:
            raise SelfSpecError(f"selfspec.corpus: the pattern {spec} matches no file{resolved_note(spec)}")
    else:
        check_file(path, "selfspec.corpus")  # says what is wrong with it
        raise SelfSpecError(f"selfspec.corpus: {spec} is not a file, folder or pattern")
    named = [(p, p.relative_to(root).as_posix()) for p in found]
    return sorted((p, n) for p, n in named if not any(part.startswith(".") for part in n.split("/")))


# The last corpus read, by its files' hashes (hashing runs at disk speed, pypdf far below it): a run reads its
# corpus for the key, for check_job and for the retriever, and parsing a folder of PDFs three times over would
# triple the wait before the engine starts.
_LAST: dict = {}


def read_corpus(spec: str, text_field: str = "text") -> Corpus:
    """Every section of the corpus at `spec`, with the files it skipped. A folder's .jsonl/.parquet records read as
    in a single file (errors name file:line); a document file that gives no text is skipped with its reason."""
    spec = str(spec)
    files = corpus_files(spec)
    try:
        stamp = (spec, text_field, MAX_FILE_BYTES, tuple((name, sha256_file(p)) for p, name in files))
    except OSError:  # an unreadable file: no reuse; the read below skips it with the reason
        stamp = None
    if stamp is not None and _LAST.get("stamp") == stamp:
        return _LAST["corpus"]
    corpus = _read(spec, files, text_field)
    _LAST.update(stamp=stamp, corpus=corpus)
    return corpus


def _read(spec: str, files: list[tuple[Path, str]], text_field: str) -> Corpus:
    corpus = Corpus(spec, records=is_record_file(spec))
    folder = not Path(spec).is_file()
    for path, name in files:
        suffix = path.suffix.lower()
        source = name if folder or not corpus.records else ""
        if suffix in RECORDS or (corpus.records and not folder):
            found = [
                {"source": source, "record": doc["id"], "text": doc["text"]} for doc in read_records(path, text_field)
            ]
        elif suffix in DOCUMENTS:
            try:
                found = [{"source": name, **s} for s in extract(path, DOCUMENTS[suffix])]
            except Skip as why:
                corpus.skipped.append((name, str(why)))
                continue
        else:
            corpus.skipped.append((name, f"not a corpus file type ({suffix or 'no suffix'}; reads {kinds()})"))
            continue
        corpus.files.append(name)
        corpus.sections += found
    if not corpus.sections:
        skips = "; ".join(f"{n}: {why}" for n, why in corpus.skipped)
        raise SelfSpecError(f"selfspec.corpus: {spec} holds no documents" + (f" (skipped: {skips})" if skips else ""))
    return corpus


def kinds() -> str:
    return ", ".join(sorted({*DOCUMENTS, *RECORDS}))


def read_records(path: str | Path, text_field: str = "text") -> list[dict]:
    """The records of one file as `{id, text}`: .jsonl (a `text_field`, optional `id`/`title`), .parquet (a
    `text_field` column, optional `id`), anything else one document per non-blank line."""
    path = check_file(Path(path), "selfspec.corpus")
    docs: list[dict] = []
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
            raise SelfSpecError(f"selfspec.corpus: {path}: not a readable parquet file ({exc})") from None
        if text_field not in table.column_names:
            raise SelfSpecError(f"{path}: no column {text_field!r} (columns: {', '.join(table.column_names)})")
        ids = table.column("id").to_pylist() if "id" in table.column_names else range(table.num_rows)
        docs = [{"id": str(i), "text": t} for i, t in zip(ids, table.column(text_field).to_pylist()) if t]
    elif path.suffix == ".jsonl":
        for lineno, obj in jsonl_objects(path):
            if not isinstance(obj.get(text_field), str):
                raise SelfSpecError(f"{path}:{lineno}: missing string field {text_field!r}")
            title = str(obj.get("title") or "").strip()
            text = (
                f"{title}{'' if title.endswith(('.', '?', '!')) else '.'} {obj[text_field]}"
                if title
                else obj[text_field]
            )
            docs.append({"id": str(obj.get("id", lineno)), "text": text})
    else:
        docs = [{"id": str(n), "text": line.strip()} for n, line in text_lines(path) if line.strip()]
    return docs


# ---- extraction ----------------------------------------------------------------------------------------------


def extract(path: Path, kind: str) -> list[dict]:
    """The sections of one document file: `{text, page}` (PDF) or `{text, section, start}`; Skip if it has none."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise Skip(f"larger than {MAX_FILE_BYTES >> 20} MiB ({size / (1 << 20):.0f} MiB): split it")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise Skip(f"cannot read: {exc.strerror or exc}") from None
    if not data.strip():
        raise Skip("empty file")
    if kind == "pdf":
        sections = pdf_pages(data)
    else:
        text = html_text(data) if kind == "html" else decode_text(data)
        sections = heading_sections(text)
    sections = [s for s in sections if s["text"].strip()]
    if not sections:
        raise Skip("no text in it")
    return sections


def decode_text(data: bytes) -> str:
    """A text file's text: UTF-8 (a byte-order mark dropped) or UTF-16 with its mark. Anything else is skipped with
    the first bad byte's line: guessing a legacy encoding (cp1252? latin-1?) would index mojibake without a word."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise Skip("not UTF-16 text despite its byte-order mark") from None
    if b"\x00" in data[:65536]:
        raise Skip("binary data, not text (NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise Skip(f"not UTF-8 text (byte {data[exc.start]:#04x} on line {line}): save it as UTF-8") from None
    controls = sum(1 for ch in text[:65536] if ch < " " and ch not in "\t\n\r\f")
    if controls > 0.01 * min(len(text), 65536):
        raise Skip("binary data, not text (control characters)")
    return text


def html_text(data: bytes) -> str:
    """A saved web page's readable text, its h1-h6 headings written as Markdown headings (so the page is split by
    section like a .md file). beautifulsoup4 with Python's own parser: it finds the page's encoding (byte-order mark,
    <meta charset>, else a guess) and needs no compiled parser."""
    from bs4 import BeautifulSoup

    if b"\x00" in data[:65536] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise Skip("binary data, not HTML (NUL bytes)")
    soup = BeautifulSoup(data, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(HTML_DROP + ("title", "head")):
        tag.decompose()
    for heading in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6"]):
        words = heading.get_text(" ", strip=True)
        heading.replace_with(f"\n\n{'#' * int(heading.name[1])} {words}\n\n" if words else "")
    for block in soup.find_all(HTML_BLOCKS):
        block.append("\n")
    text = "\n".join(" ".join(line.split()) for line in soup.get_text().splitlines())
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    if title and not text.startswith("# "):
        text = f"# {title}\n\n{text}"
    return text


def heading_sections(text: str) -> list[dict]:
    """Markdown text cut at its headings (markdown-it-py finds them, so a `# comment` in a code block is not one):
    `{text, section, start}`, the section named by its heading path ("Install > Linux"), the text before the first
    heading with section ""."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(text)
    line_starts = [0] + [m.end() for m in re.finditer(r"\n", text)]
    heads = [
        (line_starts[tok.map[0]], int(tok.tag[1]), tokens[i + 1].content.strip())
        for i, tok in enumerate(tokens)
        if tok.type == "heading_open" and tok.map
    ]
    out, path = [], []
    bounds = [(0, 0, "")] + heads + [(len(text), 0, "")]
    for (start, level, title), (end, _, _) in zip(bounds, bounds[1:]):
        if level:
            path = [p for p in path if p[0] < level] + [(level, title)]
        if text[start:end].strip():
            out.append({"text": text[start:end], "section": " > ".join(t for _, t in path), "start": start})
    return out


def pdf_pages(data: bytes) -> list[dict]:
    """A PDF's text page by page (pypdf). An encrypted PDF opens if its user password is empty (restrictions
    only); one that needs a password, or that pypdf cannot parse, is skipped with the reason."""
    import logging

    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    # pypdf logs what it repairs ("EOF marker not found"): the reason reaches the user with the skip instead
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except DependencyError:
                raise Skip("encrypted PDF (AES: pypdf needs the `cryptography` package to open it)") from None
            if not opened:
                raise Skip("encrypted PDF that needs a password: save a decrypted copy (e.g. `qpdf --decrypt`)")
        pages = [{"text": _pdf_page_text(page), "page": n} for n, page in enumerate(reader.pages, 1)]
    except Skip:
        raise
    # pypdf raises many types on a damaged file (PdfReadError, KeyError, ValueError, struct.error, zlib.error...):
    # whatever it raises, the file gives no text, and the reason is passed on.
    except Exception as exc:
        raise Skip(f"not a readable PDF ({type(exc).__name__}: {exc})") from None
    if not any(p["text"].strip() for p in pages):
        raise Skip(f"no text layer in its {len(pages)} page(s) (a scan? run OCR on it first)")
    return pages


def _pdf_page_text(page) -> str:
    lines = (" ".join(line.split()) for line in page.extract_text().splitlines())
    return "\n".join(lines).strip()


# ---- chunking ------------------------------------------------------------------------------------------------


def token_spans(texts: list[str], tokenizer=None) -> tuple[list[list[tuple[int, int]]], str]:
    """Each text's tokens as character spans, in the generator's tokenizer (a fast Hugging Face tokenizer gives
    offsets); without one, or with a tokenizer that gives no offsets, whitespace-separated words. Returns the spans
    and what they count ("tokens" or "words")."""
    if tokenizer is not None:
        try:
            enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
            return [[(a, b) for a, b in offsets if b > a] for offsets in enc["offset_mapping"]], "tokens"
        except (NotImplementedError, TypeError, ValueError, KeyError):  # a slow tokenizer: no offsets
            pass
    return [[m.span() for m in re.finditer(r"\S+", t)] for t in texts], "words"


def _boundary(text: str, spans: list[tuple[int, int]], j: int) -> int:
    """How good a place to cut before token j is: 3 a paragraph break, 2 a line or sentence end, 1 between words."""
    gap = text[spans[j - 1][1] : spans[j][0]]
    if gap.count("\n") >= 2:
        return 3
    if "\n" in gap or (gap and text[spans[j - 1][1] - 1] in ".!?;:"):
        return 2
    return 1 if gap.strip() == "" and gap else 0


def windows(text: str, spans: list[tuple[int, int]], size: int, overlap: int) -> list[tuple[int, int]]:
    """Character ranges of at most `size` tokens covering the text, cut at the best boundary in each window's
    second half, each after the first starting `overlap` tokens back (at a word start)."""
    n = len(spans)
    if n <= size:
        return [(spans[0][0], spans[-1][1])] if spans else []
    out, s = [], 0
    while True:
        e = min(s + size, n)
        if e < n:
            e = max(range(s + max(1, size // 2), e + 1), key=lambda j: (_boundary(text, spans, j), j))
        out.append((spans[s][0], spans[e - 1][1]))
        if e >= n:
            return out
        nxt = max(e - overlap, s + 1)
        while nxt < e and _boundary(text, spans, nxt) == 0:
            nxt += 1
        s = nxt


def _slug(words: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", words.lower()).strip("-")[:limit].strip("-")


def chunk_id(section: dict, text: str) -> str:
    """From the source, the place and the text: the same files give the same ids."""
    place = (
        f"p{section['page']}"
        if "page" in section
        else str(section["record"])
        if "record" in section
        else _slug(section.get("section", ""))
    )
    digest = hashlib.sha256(json.dumps([section["source"], place, text]).encode()).hexdigest()[:8]
    if not section["source"]:  # a record of a single record file, cut: `<record id>-<hex>`
        return f"{place}-{digest}"
    return f"{section['source']}#{place + '-' if place else ''}{digest}"


def chunk(corpus: Corpus, chunk_tokens: int | None, overlap: int | None, tokenizer=None) -> tuple[list[dict], str]:
    """The corpus's chunks (the documents the retriever indexes) and the unit they were counted in. Records of a
    single record file stay whole with their own ids unless `chunk_tokens` is set; a folder's records whole get
    `source#id`."""
    size = chunk_tokens or DEFAULT_CHUNK_TOKENS
    overlap = DEFAULT_CHUNK_OVERLAP if overlap is None else overlap
    whole = chunk_tokens is None
    spans, unit = token_spans([s["text"] for s in corpus.sections], tokenizer)
    out, seen = [], set()
    for section, toks in zip(corpus.sections, spans):
        where = {k: section[k] for k in ("source", "page", "section", "record") if k in section and section[k] != ""}
        if "record" in section and whole:
            rid = f"{section['source']}#{section['record']}" if section["source"] else str(section["record"])
            out.append({"id": rid, "text": section["text"], **where, "tokens": len(toks)})
            continue
        base = section.get("start", 0)
        for a, b in windows(section["text"], toks, size, min(overlap, size - 1)):
            text = section["text"][a:b].strip()  # (a byte-level token may carry the newline after a line)
            a += section["text"][a:b].find(text[:1]) if text else 0
            b = a + len(text)
            if "record" in section and not section["source"] and len(toks) <= size:
                cid = str(section["record"])  # a record that fits keeps its own id
            else:
                cid = chunk_id(section, text)
            if cid in seen:  # the same text twice in one place (a repeated footer): one chunk
                continue
            seen.add(cid)
            n = sum(1 for t in toks if a <= t[0] and t[1] <= b)
            out.append({"id": cid, "text": text, **where, "start": base + a, "end": base + b, "tokens": n})
    return out, unit


def corpus_digest(spec: str, text_field: str = "text") -> str:
    """What the run key (and a `corpus_sha256` pin) hashes. A single record file: its bytes
    (its records are the documents as they are). A folder,
    glob or document file: the extracted text of every section with its source and place, and CHUNKER_VERSION.
    Why the text and not the files' bytes plus the extractors' versions: a re-saved PDF with the same text, or a
    pypdf upgrade that extracts the same text, keeps the key, and any change in what the model reads changes it.
    The chunks follow from the sections, the tokenizer (in the model's fingerprint) and chunk_tokens/chunk_overlap
    (settings), all in the key."""
    if is_record_file(spec):
        return sha256_file(Path(spec))
    corpus = read_corpus(spec, text_field)
    places = [[s["source"], s.get("page"), s.get("section"), s.get("record"), s["text"]] for s in corpus.sections]
    return hashlib.sha256(json.dumps({"chunker": CHUNKER_VERSION, "sections": places}).encode()).hexdigest()


def summary(corpus: Corpus, chunks: list[dict], unit: str, chunk_tokens: int | None) -> list[str]:
    """`selfspec corpus inspect`'s lines: files, sections, chunks, their sizes, every skipped file and why."""
    sizes = sorted(c["tokens"] for c in chunks)

    def pct(q: float) -> int:
        return sizes[min(len(sizes) - 1, int(q * len(sizes)))]

    size = "whole records" if corpus.records and chunk_tokens is None else f"<= {chunk_tokens or DEFAULT_CHUNK_TOKENS}"
    kinds_read = sorted({Path(f).suffix.lower() for f in corpus.files})
    lines = [
        f"corpus {corpus.spec}: {len(corpus.files)} file(s) read ({', '.join(kinds_read)}), "
        f"{len(corpus.skipped)} skipped",
        f"{len(corpus.sections)} section(s) (PDF pages, Markdown/HTML sections, text files, records) -> "
        f"{len(chunks)} chunk(s) of {size} {unit}",
        f"chunk {unit}: min {sizes[0]}, median {pct(0.5)}, p90 {pct(0.9)}, max {sizes[-1]}, total {sum(sizes):,}",
    ]
    per_file: dict[str, int] = {}
    for c in chunks:
        per_file[c.get("source", "")] = per_file.get(c.get("source", ""), 0) + 1
    lines += [f"  {name or corpus.spec}: {n} chunk(s)" for name, n in per_file.items()]
    lines += [f"skipped {name}: {why}" for name, why in corpus.skipped]
    if unit == "words":
        lines.append("(counted in words: give --model, the generator's folder, to count in its tokens)")
    return lines


def cited_sources(data: list[dict]) -> list[tuple[str, int]]:
    """The corpus files the triplets cite (a chunk id's part before `#`), with how many triplets cite each: the
    dataset card lists them. Ids of a single record file (no `#`) name no file and are not counted."""
    counts: dict[str, int] = {}
    for row in data:
        for name in {d.split("#", 1)[0] for d in row.get("docs") or () if "#" in d}:
            counts[name] = counts.get(name, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
