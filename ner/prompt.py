"""The labelling prompt: a fixed system instruction and hand-written few-shot examples, then the request.

Everything before the final user message is byte-identical across requests, so vLLM's prefix cache
serves it from memory; only the text and its candidates change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from langchain_core.messages import BaseMessage
from langchain_core.prompts import ChatPromptTemplate, FewShotChatMessagePromptTemplate

from ner.decoding import answer_json

DEFINITIONS = (
    "You label named entities. You get a text and a list of candidate names taken from it. "
    "Give every candidate exactly one label:\n"
    "- person: a named human being, e.g. a first name and a surname.\n"
    "- organization: a company, brand, bank, agency, government body, university, museum, team, club, "
    "airline or tournament.\n"
    "- location: a country, city, region, river, mountain, sea, planet or other geographic place.\n"
    "- none: anything else, such as a product, award, event, vehicle, work of art, field of study, "
    "or a common word that is capitalised only because it starts a sentence.\n"
    "Answer with one JSON object that maps each candidate, in the given order, to its label."
)
# The 135M model's commonest confusions, named (hand-written, no text or entity of dev or held-out): places
# after "in X" labelled organization, publications labelled person or location, surnames alone missed.
# Chosen on dev (micro-F1 0.870 -> 0.893, docs/ner.md), then measured on the frozen held-out set.
HINTS = (
    '\nHints: a single capitalised word right after "in", "near", "from", "to" or "outside" is '
    "usually a location (a town, city, region or country). Newspapers, magazines, news agencies and "
    "broadcasters are organizations. A person can be named by a surname alone."
)
SYSTEM = DEFINITIONS + HINTS

# Hand-written (not taken from any evaluation set); the keys are exactly the names `resolution.labelling_names`
# offers for each text, which a test checks. A run joined by "of" comes with its two sides: when they are a
# person and an organization, the run itself is "none".
EXAMPLES: tuple[tuple[str, dict[str, str]], ...] = (
    (
        "Elon Musk said Tesla would build a new factory near Berlin in 2021.",
        {"Elon Musk": "person", "Tesla": "organization", "Berlin": "location"},
    ),
    (
        "Engineers from the Max Planck Institute tested the Hubble camera in Chile.",
        {"Engineers": "none", "Max Planck Institute": "organization", "Hubble": "none", "Chile": "location"},
    ),
    (
        "Goldman Sachs hired Priya Patel from the Bank of England to run its office in Mumbai.",
        {"Goldman Sachs": "organization", "Priya Patel": "person", "Bank of England": "organization",
         "Bank": "none", "England": "location", "Mumbai": "location"},
    ),
    (
        "Brazil's Petrobras signed a deal with Equinor in Rio de Janeiro after the Olympic Games.",
        {"Brazil": "location", "Petrobras": "organization", "Equinor": "organization",
         "Rio de Janeiro": "location", "Olympic Games": "none"},
    ),
    (
        "Kofi Annan and Wangari Maathai met officials of the African Union in Addis Ababa.",
        {"Kofi Annan": "person", "Wangari Maathai": "person", "African Union": "organization",
         "Addis Ababa": "location"},
    ),
    (
        "Nike signed Serena Williams after her win at the US Open, said Phil Knight.",
        {"Nike": "organization", "Serena Williams": "person", "US Open": "organization", "Phil Knight": "person"},
    ),
    (
        "The Danube flows through Vienna, where Mozart wrote The Magic Flute for the Vienna State Opera.",
        {"Danube": "location", "Vienna": "location", "Mozart": "person", "The Magic Flute": "none",
         "Vienna State Opera": "organization"},
    ),
    (
        "Kwame Mensah of Ecobank told reporters in Accra that the bank would hire 300 staff.",
        {"Kwame Mensah of Ecobank": "none", "Kwame Mensah": "person", "Ecobank": "organization",
         "Accra": "location"},
    ),
)  # fmt: skip


def request_text(text: str, names: Sequence[str]) -> str:
    return f"Text: {text}\nCandidates: {' | '.join(names)}"


_EXAMPLE = ChatPromptTemplate.from_messages([("human", "{request}"), ("ai", "{answer}")])
_ROLES = {"system": "system", "human": "user", "ai": "assistant"}

Examples = Sequence[tuple[str, dict[str, str]]]
Messages = Callable[[str, Sequence[str]], list[dict[str, str]]]


def template(system: str = SYSTEM, examples: Examples = EXAMPLES) -> ChatPromptTemplate:
    return ChatPromptTemplate.from_messages(
        [
            ("system", system),
            FewShotChatMessagePromptTemplate(
                example_prompt=_EXAMPLE,
                examples=[
                    {"request": request_text(text, list(labels)), "answer": answer_json(labels)}
                    for text, labels in examples
                ],
            ),
            ("human", "{request}"),  # the only variable part, and the last one
        ]
    )


def to_chat(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """langchain messages as the role/content dicts a chat template takes."""
    return [{"role": _ROLES[message.type], "content": str(message.content)} for message in messages]


_SLOT = "\x00request\x00"  # stands for the request while a prompt's fixed part is formatted; no text contains it


def messages_for(prompt: ChatPromptTemplate) -> Messages:
    """The chat messages that label `names` in `text` with this prompt.

    LangChain formats the fixed part (system message, few-shot turns) once, here: formatting all of it again for
    every request took ~0.3 ms, 5% of the serving process's event loop at 256 concurrent NER requests on the H100
    (bench/results/h100-tasks.md). The request is the template's last message and its only variable.
    """
    *fixed, last = to_chat(prompt.format_messages(request=_SLOT))
    if last != {"role": "user", "content": _SLOT} or any(_SLOT in message["content"] for message in fixed):
        raise ValueError("a labelling prompt must end with the human message '{request}', its only variable")

    def messages(text: str, names: Sequence[str]) -> list[dict[str, str]]:
        # Copies: a caller may change the messages it gets without changing the next request's prompt.
        return [*(dict(message) for message in fixed), {"role": "user", "content": request_text(text, names)}]

    return messages


TEMPLATE = template()
labelling_messages: Messages = messages_for(TEMPLATE)

# The prompt a tuned labelling adapter (`finetune/configs/ner-smollm2.yaml`) is trained on and served with: the
# adapter has learnt what the definitions, hints and examples tell the base model, so its prompt is ~70 tokens
# where the few-shot one is ~970 (training on a CPU costs per token; so does every part's prefill).
TUNED_SYSTEM = "Label each candidate name: person, organization, location or none."
tuned_messages: Messages = messages_for(template(TUNED_SYSTEM, ()))
