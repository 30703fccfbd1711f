"""Kind 5001, summarization: an extractive summary of the inputs, no model needed.

Spec: ``shared/specs/dvm-kinds/5001.md`` (sections "Input", "Params", "Output").

The summary is made of the input's own sentences, picked by score and given
back in their original order. Scoring is word frequency in the Luhn/SumBasic
family rather than TextRank: it is linear in the input size (TextRank builds a
sentence-similarity graph, quadratic: a 200k-character input has ~2,000
sentences and 4 million pairs), needs no iteration to converge, and the reason
a sentence was picked is easy to state. Without a corpus there is no real IDF;
a stopword list does its job of muting words that say nothing about the topic.

- a word's weight is how often it occurs, minus one (a word said once tells
  nothing about what the text is about); plural ``-s`` is folded in;
- a sentence scores the sum of its distinct words' weights over the square
  root of their number (between favouring long sentences and short ones),
  times a position bonus: x1.3 for the first sentence, x1.1 for the first of
  each paragraph (texts tend to state their subject up front);
- picking is greedy; after each pick the weights of its words are halved, so
  the next pick says something new (SumBasic), and a repeated sentence is
  never picked twice. Ties go to the earlier sentence: the output is
  deterministic.

Param ``length`` (optional): ``"<n> words"``, ``"<n> sentences"``, or
``"<n> paragraphs"`` (n paragraphs of about 3 sentences each, separated by a
blank line); a bare integer means sentences. In words mode sentences are
added while they fit and still score above zero; if the best one alone is
longer than n words, it is cut at n words.
Without it the summary has 20% of the sentences, at least 1 and at most 5.

Inputs: ``text``, ``event`` and ``job`` inputs, concatenated (each starts a new
paragraph). ``url`` inputs are refused: fetching and cleaning web pages is not
this handler's job (the spec asks for inputs that need no extraction).

Output: ``text/plain``, or ``text/markdown`` if the request asks for it (the
text is the same).

Settings (an agent's ``settings.summarize`` in node.toml):

- ``max_input_chars`` (default 200000): the most characters of input accepted,
  all inputs together.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from dvm.handlers import HandlerError, JobContext, Output, Settings
from nips.nip90 import JobRequest

DEFAULT_MAX_INPUT_CHARS = 200_000
# Above this many characters the scoring runs in a worker thread, so a large
# input does not hold up the event loop; below it a thread costs more than it saves.
THREAD_THRESHOLD_CHARS = 20_000
SENTENCES_PER_PARAGRAPH = 3
DEFAULT_SHARE = 0.2
DEFAULT_MAX_SENTENCES = 5
FIRST_SENTENCE_BONUS = 1.3
PARAGRAPH_START_BONUS = 1.1
REPEAT_DAMPING = 0.5

Unit = Literal["words", "sentences", "paragraphs"]


@dataclass(frozen=True, slots=True)
class Length:
    """The ``length`` param: how long the summary may be."""

    count: int
    unit: Unit


@dataclass(frozen=True, slots=True)
class Sentence:
    text: str  # whitespace collapsed
    paragraph: int
    first_in_paragraph: bool


# --- length ---------------------------------------------------------------------

_LENGTH = re.compile(r"(\d{1,9})\s*(words?|sentences?|paragraphs?)?")


def parse_length(value: str) -> Length:
    """``"120 words"``, ``"3 sentences"``, ``"2 paragraphs"`` or ``"3"`` (sentences)."""
    match = _LENGTH.fullmatch(value.strip().lower())
    if match is None:
        raise HandlerError(
            f"param length: expected '<n> words', '<n> sentences' or '<n> paragraphs', got {value[:40]!r}"
        )
    count = int(match.group(1))
    if count < 1:
        raise HandlerError("param length: must be at least 1")
    word = match.group(2) or "sentences"
    unit: Unit = (
        "words" if word.startswith("w") else "paragraphs" if word.startswith("p") else "sentences"
    )
    return Length(count, unit)


# --- sentences ------------------------------------------------------------------

# Abbreviations that do not end a sentence even before a capital ("Dr. Smith").
# Ones that often do ("etc.", "Inc.") are left to the capital-letter rule.
_NEVER_FINAL = frozenset(
    """mr mrs ms dr prof st sr jr vs cf fig figs no nos vol pp gen col lt sgt capt
    rev hon mt ft approx dept e.g i.e a.m p.m u.s u.k a.k.a""".split()  # noqa: SIM905 -- a word list reads best as words
)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
# A line that starts a new sentence whatever came before: a list item or a heading.
_LINE_START = re.compile(r"\s*(?:[-*\u2022]\s|\d{1,3}[.)]\s|#{1,6}\s)")
_HEADING = re.compile(r"\s*#{1,6}\s")
_ENDING = re.compile(
    r"""[.!?\u2026]+["'\u201d\u2019\u00bb)\]]*\s+|[\u3002\uff01\uff1f]+["'\u201d\u300d\u300f)]*\s*"""
)
_OPENERS = "\"'\u201c\u2018\u00ab([\u300c\u300e"


def split_sentences(text: str) -> list[Sentence]:
    """Sentences of ``text`` in order; paragraphs are separated by blank lines."""
    sentences: list[Sentence] = []
    for number, paragraph in enumerate(_PARAGRAPH_BREAK.split(text.strip())):
        first = True
        for block in _blocks(paragraph):
            for piece in _split_block(block):
                collapsed = " ".join(piece.split())
                if collapsed:
                    sentences.append(Sentence(collapsed, number, first))
                    first = False
    return sentences


def _blocks(paragraph: str) -> list[str]:
    """Lines joined back into runs, cut where a list item starts and around headings."""
    blocks: list[list[str]] = []
    for line in paragraph.splitlines():
        if not blocks or _LINE_START.match(line) or _HEADING.match(blocks[-1][0]):
            blocks.append([])
        blocks[-1].append(line)
    return [" ".join(lines) for lines in blocks]


def _split_block(block: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    for match in _ENDING.finditer(block):
        if _ends_sentence(block, start, match):
            pieces.append(block[start : match.end()])
            start = match.end()
    pieces.append(block[start:])
    return pieces


def _ends_sentence(block: str, start: int, match: re.Match[str]) -> bool:
    following = block[match.end() :].lstrip(_OPENERS)
    if following[:1].islower():  # "e.g. this", "approx. five", "Well... maybe"
        return False
    if not match.group().startswith("."):
        return True
    before = block[start : match.start()].split()
    if not before:
        return False
    word = before[-1].lstrip(_OPENERS).lower()
    if word in _NEVER_FINAL:
        return False
    if len(word) == 1 and word.isalpha():  # an initial: "J. R. R. Tolkien"
        return False
    # A list number at the start: "1. Gather the data" (when not caught as a line start).
    return not (len(before) == 1 and word.isdigit())


# --- scoring --------------------------------------------------------------------

_STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because
    been before being below between both but by can could did do does doing done down during
    each even ever every few for from further get gets got had has have having he her here hers
    herself him himself his how however i if in into is it its itself just least less like made
    make many may me might more most much must my myself never no nor not now of off often on
    once one only or other others our ours ourselves out over own per perhaps quite rather
    really said same say says she should since so some still such than that the their theirs
    them themselves then there these they this those though through thus to too under until up
    upon us very was we well were what when where whether which while who whom whose why will
    with within without would yet you your yours yourself yourselves""".split()  # noqa: SIM905 -- a word list reads best as words
)
_WORD = re.compile(r"\w+")


def content_words(sentence: str) -> list[str]:
    """Lower-cased words that can carry a topic: no stopwords, numbers or single letters."""
    words = []
    for token in _WORD.findall(sentence.lower()):
        if token in _STOPWORDS or token.isdigit() or "_" in token:
            continue
        if len(token) < 2 and token.isascii():
            continue
        words.append(_fold(token))
    return words


def _fold(word: str) -> str:
    """A plural's singular, roughly: enough to count "bees" and "bee" as one word."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def pick(sentences: list[Sentence], length: Length | None) -> list[int]:
    """Indexes of the sentences to keep, in original order."""
    words = [set(content_words(s.text)) for s in sentences]
    weight = {w: n - 1.0 for w, n in Counter(w for ws in words for w in ws).items()}
    bonus = [_position_bonus(i, s) for i, s in enumerate(sentences)]

    def score(i: int) -> float:
        if not words[i]:
            return 0.0
        return sum(weight[w] for w in words[i]) / math.sqrt(len(words[i])) * bonus[i]

    limit, budget = _limits(len(sentences), length)
    # Lazy greedy: picks only lower weights, so a stored score is an upper bound
    # and needs recomputing only when it reaches the top of the heap stale.
    heap = [(-score(i), i, 0) for i in range(len(sentences))]
    heapq.heapify(heap)
    chosen: list[int] = []
    seen: set[str] = set()
    while heap and len(chosen) < limit:
        negative, i, stamp = heapq.heappop(heap)
        if stamp != len(chosen):
            heapq.heappush(heap, (-score(i), i, len(chosen)))
            continue
        key = sentences[i].text.lower()
        size = len(sentences[i].text.split())
        if budget is not None:
            if not chosen and size > budget:
                break  # the best sentence alone is too long: the caller cuts it
            if chosen and negative >= 0:
                break  # nothing relevant left; padding would only use up words
            if size > budget:
                continue
        if key in seen:
            continue
        seen.add(key)
        chosen.append(i)
        if budget is not None:
            budget -= size
        for w in words[i]:
            weight[w] *= REPEAT_DAMPING
    return sorted(chosen)


def _position_bonus(index: int, sentence: Sentence) -> float:
    if index == 0:
        return FIRST_SENTENCE_BONUS
    return PARAGRAPH_START_BONUS if sentence.first_in_paragraph else 1.0


def _limits(total: int, length: Length | None) -> tuple[int, int | None]:
    """(most sentences, word budget or None)."""
    if length is None:
        return min(max(1, round(total * DEFAULT_SHARE)), DEFAULT_MAX_SENTENCES), None
    if length.unit == "words":
        return total, length.count
    if length.unit == "paragraphs":
        return min(total, length.count * SENTENCES_PER_PARAGRAPH), None
    return min(total, length.count), None


def summarize(text: str, length: Length | None = None) -> str:
    """The summary of ``text``; pure and deterministic."""
    sentences = split_sentences(text)
    if not sentences:
        raise HandlerError("the input is empty")
    chosen = pick(sentences, length)
    if not chosen and length is not None:  # words mode and no sentence fits: cut the best one
        best = pick(sentences, Length(1, "sentences"))[0]
        return " ".join(sentences[best].text.split()[: length.count]) + "\u2026"
    texts = [sentences[i].text for i in chosen]
    if length is not None and length.unit == "paragraphs":
        step = SENTENCES_PER_PARAGRAPH
        return "\n\n".join(" ".join(texts[i : i + step]) for i in range(0, len(texts), step))
    return " ".join(texts)


# --- the handler ----------------------------------------------------------------


class Summarize:
    kind = 5001
    name = "summarize"
    title = "Extractive summary of text, events or job results"

    def check_settings(self, settings: Settings) -> None:
        for key in settings:
            if key != "max_input_chars":
                raise ValueError(f"unknown setting {key!r} (known: max_input_chars)")
        _max_input_chars(settings)

    def unavailable(self, settings: Settings) -> str | None:
        return None

    def validate(self, request: JobRequest, settings: Settings) -> None:
        for key, _ in request.params:
            if key != "length":
                raise HandlerError(f"unknown param {key!r} (known: length)")
        lengths = request.param_values("length")
        if len(lengths) > 1:
            raise HandlerError("param length: given more than once")
        if lengths:
            parse_length(lengths[0])
        if not request.inputs:
            raise HandlerError("no input: send text, an event or a job to summarize")
        if any(i.type == "url" for i in request.inputs):
            raise HandlerError("url inputs are not supported; send text, an event or a job")
        _check_size(sum(len(i.data) for i in request.inputs if i.type == "text"), settings)

    async def run(self, ctx: JobContext) -> Output:
        value = ctx.request.param("length")
        length = parse_length(value) if value is not None else None
        _check_size(sum(len(t) for t in ctx.texts), ctx.settings)
        text = "\n\n".join(ctx.texts)
        if len(text) > THREAD_THRESHOLD_CHARS:
            summary = await asyncio.to_thread(summarize, text, length)
        else:
            summary = summarize(text, length)
        mime = "text/markdown" if ctx.request.output == "text/markdown" else "text/plain"
        return Output(summary, mime)


def _max_input_chars(settings: Settings) -> int:
    value = settings.get("max_input_chars", DEFAULT_MAX_INPUT_CHARS)
    if type(value) is not int or value < 1:
        raise ValueError("max_input_chars must be a positive integer")
    return value


def _check_size(chars: int, settings: Settings) -> None:
    limit = _max_input_chars(settings)
    if chars > limit:
        raise HandlerError(f"input too large: {chars} characters (at most {limit})")


HANDLER = Summarize()
