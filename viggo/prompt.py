"""The ViGGO prompt: one fixed system instruction, optional few-shot turns, then the sentence.

The system message and few-shot turns are identical for every request, so the rendered prompts share
a long prefix that vLLM's prefix cache computes once. Fine-tuning trains on exactly these messages
(without few-shot turns), so the served adapter sees the prompt it learnt.
"""

from __future__ import annotations

from collections.abc import Sequence

from viggo.dataset import ViggoExample
from viggo.ontology import ACTS, ATTRIBUTES

SYSTEM_INSTRUCTION = (
    "Given a target sentence construct the underlying meaning representation of the input sentence as a "
    "single function with attributes and attribute values. This function should describe the target string "
    "accurately and the function must be one of the following "
    f"[{', '.join(repr(act) for act in ACTS)}]. "
    "The attributes must be one of the following: "
    f"[{', '.join(repr(attribute) for attribute in ATTRIBUTES)}]. "
    "Output only the meaning representation, e.g. give_opinion(name[Diablo II], rating[good])."
)

# One training example per dialogue act, picked greedily (in ACTS order) to cover the most attributes
# not yet shown, then the shortest sentence; 13 of the 14 attributes appear. Fixed here rather than
# computed at start-up so the service needs no copy of the training data.
FEW_SHOT_EXAMPLES: tuple[ViggoExample, ...] = (
    ViggoExample(
        "Worms: Reloaded is an average action, platformer, strategy with multiplayer out on PC, Linux, Mac, and Steam.",
        "inform(name[Worms: Reloaded], rating[average], genres[action, platformer, strategy], has_multiplayer[yes], "
        "platforms[PC], available_on_steam[yes], has_linux_release[yes], has_mac_release[yes])",
    ),
    ViggoExample("What's the longest game from 2013?", "request(release_year[2013], specifier[longest])"),
    ViggoExample(
        "Rocket League is a pretty solid third person game from Psyonix, I must say.",
        "give_opinion(name[Rocket League], developer[Psyonix], rating[good], player_perspective[third person])",
    ),
    ViggoExample(
        "Is that the M rated PC game BioShock?", "confirm(name[BioShock], esrb[M (for Mature)], platforms[PC])"
    ),
    ViggoExample(
        "Do you hate most third person games, or just Skyforge?",
        "verify_attribute(name[Skyforge], rating[poor], player_perspective[third person])",
    ),
    ViggoExample("Do you like PlayStation games like Portal 2?", "suggest(name[Portal 2], platforms[PlayStation])"),
    ViggoExample("Why do you dislike PC games?", "request_explanation(rating[poor], platforms[PC])"),
    ViggoExample(
        "Ever heard of The Forest of Doom on Mac?", "recommend(name[The Forest of Doom], has_mac_release[yes])"
    ),
    ViggoExample("Are you a Linux gamer?", "request_attribute(has_linux_release[])"),
)


def build_messages(sentence: str, examples: Sequence[ViggoExample] = ()) -> list[dict[str, str]]:
    """Chat messages for one sentence: system instruction, few-shot user/assistant turns, the sentence."""
    messages = [{"role": "system", "content": SYSTEM_INSTRUCTION}]
    for example in examples:
        messages.append({"role": "user", "content": example.sentence})
        messages.append({"role": "assistant", "content": example.mr})
    messages.append({"role": "user", "content": sentence})
    return messages
