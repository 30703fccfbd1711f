"""Tests for dvm/handlers/summarize.py: kind 5001, extractive summaries."""

from __future__ import annotations

import time

import pytest

from dvm.handlers import HandlerError, JobContext
from dvm.handlers.summarize import HANDLER, Length, parse_length, split_sentences, summarize
from nips.nip90 import JobRequest, parse_request
from tests.helpers import make_event

# Two sentences carry the topic (bees, crops, food); the rest is scenery.
TOPIC_1 = (
    "Honey bees pollinate roughly a third of the crops that humans eat, so the collapse "
    "of bee colonies threatens the world's food supply."
)
TOPIC_2 = (
    "Pesticides, parasites and habitat loss are killing bee colonies, and without bees "
    "pollinating crops, farms cannot grow enough food."
)
FIELD_TRIP = " ".join(
    [
        TOPIC_1,
        "The morning was cold and grey when the researchers arrived at the orchard.",
        "They parked the van near the old barn.",
        "Coffee was poured from a thermos into paper cups.",
        "Dr. Alvarez checked her notebook, e.g. the list of hives numbered 1 to 40.",
        "The temperature was 4.5 degrees at dawn.",
        "A dog barked somewhere across the valley.",
        "The team counted the hives one by one.",
        "Some of the wooden boxes needed fresh paint.",
        "Lunch was sandwiches and apples from the farm shop.",
        "A tractor passed slowly along the lane.",
        TOPIC_2,
        "Nobody said much on the drive home.",
        "The radio played a song.",
        "It started to rain just after six",
    ]
)


def request(*tags: list[str]) -> JobRequest:
    return parse_request(make_event(kind=5001, tags=tags))


def text_request(text: str, *params: tuple[str, str]) -> JobRequest:
    return request(["i", text, "text"], *(["param", k, v] for k, v in params))


async def run(text: str | list[str], *params: tuple[str, str], **settings: int) -> str:
    texts = [text] if isinstance(text, str) else text
    req = request(*(["i", t, "text"] for t in texts), *(["param", k, v] for k, v in params))
    HANDLER.validate(req, settings)
    return (await HANDLER.run(JobContext(request=req, texts=texts, settings=settings))).content


def sentences_of(summary: str) -> list[str]:
    return [s.text for s in split_sentences(summary)]


async def test_picks_the_sentences_that_carry_the_topic() -> None:
    assert await run(FIELD_TRIP, ("length", "2 sentences")) == f"{TOPIC_1} {TOPIC_2}"


async def test_default_length_is_a_fifth_of_the_sentences() -> None:
    picked = sentences_of(await run(FIELD_TRIP))
    assert len(picked) == 3  # 15 sentences
    assert TOPIC_1 in picked and TOPIC_2 in picked


async def test_default_length_is_at_most_five_sentences() -> None:
    assert len(sentences_of(await run(FIELD_TRIP * 4))) == 5


@pytest.mark.parametrize("n", [1, 3, 4, 7])
async def test_length_in_sentences_keeps_original_order(n: int) -> None:
    original = sentences_of(FIELD_TRIP)
    picked = sentences_of(await run(FIELD_TRIP, ("length", f"{n} sentences")))
    assert len(picked) == n
    positions = [original.index(s) for s in picked]
    assert positions == sorted(positions)


async def test_a_bare_number_means_sentences() -> None:
    assert len(sentences_of(await run(FIELD_TRIP, ("length", "4")))) == 4


@pytest.mark.parametrize("n", [25, 45, 60, 100])
async def test_length_in_words_is_a_ceiling(n: int) -> None:
    summary = await run(FIELD_TRIP, ("length", f"{n} words"))
    assert len(summary.split()) <= n
    assert TOPIC_1 in summary


async def test_length_in_words_cuts_the_best_sentence_when_none_fits() -> None:
    assert await run(FIELD_TRIP, ("length", "5 words")) == "Honey bees pollinate roughly a\u2026"


async def test_length_in_paragraphs_groups_three_sentences() -> None:
    summary = await run(FIELD_TRIP, ("length", "2 paragraphs"))
    paragraphs = summary.split("\n\n")
    assert [len(sentences_of(p)) for p in paragraphs] == [3, 3]


async def test_asking_for_more_than_there_is_gives_everything_once() -> None:
    text = "Cats sleep a lot. Cats sleep a lot. Dogs bark at night."
    assert await run(text, ("length", "10 sentences")) == "Cats sleep a lot. Dogs bark at night."


@pytest.mark.parametrize(
    "value", ["", "many", "0 sentences", "-2", "3 pages", "2.5 sentences", "sentences 3", "1e3"]
)
def test_bad_length_is_refused(value: str) -> None:
    with pytest.raises(HandlerError, match=r"^param length: "):
        HANDLER.validate(text_request("Some text.", ("length", value)), {})


def test_length_forms() -> None:
    assert parse_length(" 12 Words ") == Length(12, "words")
    assert parse_length("1 sentence") == Length(1, "sentences")
    assert parse_length("10 paragraphs") == Length(10, "paragraphs")
    assert parse_length("7") == Length(7, "sentences")


def test_unknown_and_repeated_params_are_refused() -> None:
    with pytest.raises(HandlerError, match="unknown param 'style'"):
        HANDLER.validate(text_request("Some text.", ("style", "bullets")), {})
    with pytest.raises(HandlerError, match="more than once"):
        HANDLER.validate(text_request("Some text.", ("length", "2"), ("length", "3")), {})


def test_url_inputs_are_refused() -> None:
    req = request(["i", "https://example.com/article", "url"])
    with pytest.raises(HandlerError) as caught:
        HANDLER.validate(req, {})
    assert str(caught.value) == "url inputs are not supported; send text, an event or a job"


def test_a_request_without_inputs_is_refused() -> None:
    with pytest.raises(HandlerError, match="no input"):
        HANDLER.validate(request(["param", "length", "2"]), {})


def test_event_and_job_inputs_are_accepted() -> None:
    HANDLER.validate(request(["i", "ab" * 32, "event"], ["i", "cd" * 32, "job"]), {})


def test_text_over_the_limit_is_refused_before_the_job() -> None:
    with pytest.raises(HandlerError, match=r"input too large: 101 characters \(at most 100\)"):
        HANDLER.validate(text_request("x" * 101), {"max_input_chars": 100})


async def test_resolved_inputs_over_the_limit_are_refused_at_run_time() -> None:
    req = request(["i", "ab" * 32, "event"], ["i", "cd" * 32, "job"])
    ctx = JobContext(request=req, texts=["a" * 60, "b" * 60], settings={"max_input_chars": 100})
    with pytest.raises(HandlerError, match="input too large: 120 characters"):
        await HANDLER.run(ctx)


async def test_inputs_are_concatenated_without_merging_sentences() -> None:
    texts = ["Solar panels turn sunlight into power", "Solar power is cheap. Wind is cheap too."]
    assert await run(texts, ("length", "1")) == "Solar power is cheap."
    assert await run(texts, ("length", "9 words")) == "Solar power is cheap. Wind is cheap too."


async def test_markdown_output_when_asked() -> None:
    req = request(["i", FIELD_TRIP, "text"], ["output", "text/markdown"])
    out = await HANDLER.run(JobContext(request=req, texts=[FIELD_TRIP]))
    assert out.mime == "text/markdown"
    plain = await HANDLER.run(JobContext(request=text_request(FIELD_TRIP), texts=[FIELD_TRIP]))
    assert (plain.mime, plain.content) == ("text/plain", out.content)


async def test_the_same_input_gives_the_same_summary() -> None:
    assert {await run(FIELD_TRIP) for _ in range(3)} == {await run(FIELD_TRIP)}


# --- ugly inputs ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   \n\n\t  "])
async def test_empty_input_is_an_error(text: str) -> None:
    req = text_request("placeholder")
    with pytest.raises(HandlerError, match="empty"):
        await HANDLER.run(JobContext(request=req, texts=[text]))


async def test_one_sentence_is_its_own_summary() -> None:
    assert await run("  Just one   sentence here.  ") == "Just one sentence here."


async def test_text_without_any_punctuation() -> None:
    text = "no capitals no full stops just a stream of words from a chat message"
    assert await run(text, ("length", "3 sentences")) == text


async def test_unicode_text() -> None:
    text = (
        "Die Bienen bestäuben die Äpfel. Der Imker füttert die Bienen im Winter. "
        "Ein Hund bellt. 蜜蜂很重要。 今天下雨了。 Émile aime les abeilles \U0001f41d."
    )
    picked = sentences_of(await run(text, ("length", "6 sentences")))
    assert picked == [
        "Die Bienen bestäuben die Äpfel.",
        "Der Imker füttert die Bienen im Winter.",
        "Ein Hund bellt.",
        "蜜蜂很重要。",
        "今天下雨了。",
        "Émile aime les abeilles \U0001f41d.",
    ]
    assert len(sentences_of(await run(text, ("length", "2")))) == 2


async def test_huge_input_is_summarized_quickly() -> None:
    text = "\n\n".join(
        f"Paragraph {i} talks about topic{i % 50} and the river. It has filler words too. "
        f"Number {i}.{i} is a decimal, e.g. a measurement."
        for i in range(1300)
    )
    assert 150_000 < len(text) < 200_000
    started = time.perf_counter()
    summary = await run(text, ("length", "100 words"))
    assert time.perf_counter() - started < 3
    assert 0 < len(summary.split()) <= 100


# --- sentence splitting -----------------------------------------------------------


def test_abbreviations_decimals_and_initials_do_not_end_sentences() -> None:
    text = (
        "Dr. Smith paid $3.50 for tea, e.g. green tea. J. R. R. Tolkien wrote books, "
        'i.e. novels. Prices rose approx. ten percent. She said "Stop." Then she left! '
        "Was it late? Yes... maybe it was. We bought pens, paper etc. The shop closed"
    )
    assert [s.text for s in split_sentences(text)] == [
        "Dr. Smith paid $3.50 for tea, e.g. green tea.",
        "J. R. R. Tolkien wrote books, i.e. novels.",
        "Prices rose approx. ten percent.",
        'She said "Stop."',
        "Then she left!",
        "Was it late?",
        "Yes... maybe it was.",
        "We bought pens, paper etc.",
        "The shop closed",
    ]


def test_paragraphs_list_items_and_headings_start_sentences() -> None:
    text = "# Shopping\nWe need\n- milk\n- bread\n1. eggs\n\nA new paragraph\nwrapped over lines."
    sentences = split_sentences(text)
    assert [s.text for s in sentences] == [
        "# Shopping",
        "We need",
        "- milk",
        "- bread",
        "1. eggs",
        "A new paragraph wrapped over lines.",
    ]
    assert [s.paragraph for s in sentences] == [0, 0, 0, 0, 0, 1]


def test_summarize_is_pure() -> None:
    assert summarize(FIELD_TRIP, Length(2, "sentences")) == f"{TOPIC_1} {TOPIC_2}"


# --- settings ---------------------------------------------------------------------


def test_settings() -> None:
    HANDLER.check_settings({})
    HANDLER.check_settings({"max_input_chars": 5000})
    assert HANDLER.unavailable({}) is None
    for bad in (0, -1, "5000", True, 1.5):
        with pytest.raises(ValueError, match="max_input_chars"):
            HANDLER.check_settings({"max_input_chars": bad})
    with pytest.raises(ValueError, match="'max_chars'"):
        HANDLER.check_settings({"max_chars": 5000})
