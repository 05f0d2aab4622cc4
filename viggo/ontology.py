"""The ViGGO ontology: dialogue acts, attributes and the closed value sets, shared by the parser,
the grammar and the prompt so they can never disagree."""

from __future__ import annotations

ACTS: tuple[str, ...] = (
    "inform",
    "request",
    "give_opinion",
    "confirm",
    "verify_attribute",
    "suggest",
    "request_explanation",
    "recommend",
    "request_attribute",
)

# In the order every MR of the corpus lists them (no train/valid MR contradicts it); the grammar
# enforces this order, which also makes "each attribute at most once" cheap to express.
ATTRIBUTES: tuple[str, ...] = (
    "name",
    "exp_release_date",
    "release_year",
    "developer",
    "esrb",
    "rating",
    "genres",
    "player_perspective",
    "has_multiplayer",
    "platforms",
    "available_on_steam",
    "has_linux_release",
    "has_mac_release",
    "specifier",
)

# Attributes whose value is a ", "-separated list in the corpus. `developer` and `exp_release_date`
# also contain commas ("Spectrum HoloByte, Inc.", "December 1, 2018") but are single values.
LIST_ATTRIBUTES: frozenset[str] = frozenset({"genres", "platforms", "player_perspective"})

# The only act whose attribute carries no value: `request_attribute(esrb[])` asks *for* the value.
EMPTY_VALUE_ACT = "request_attribute"

# The corpus has at most 4 list items (platforms); the grammar caps lists at this many so a model
# cannot loop on "PC, Xbox, PC, ..." until max_tokens cuts the MR off.
MAX_LIST_ITEMS = 5

SLOT_SEPARATOR = ", "
LIST_SEPARATOR = ", "

_YES_NO = ("yes", "no")

# Closed vocabularies of the corpus (identical in train and valid); the grammar restricts these
# slots so a small model cannot invent e.g. `rating[great]`. Open slots (name, developer, dates,
# specifier, ...) only need to be bracket-free.
CLOSED_VALUES: dict[str, tuple[str, ...]] = {
    "esrb": ("E (for Everyone)", "E 10+ (for Everyone 10 and Older)", "T (for Teen)", "M (for Mature)"),
    "rating": ("excellent", "good", "average", "poor"),
    "genres": (
        "MMORPG",
        "action",
        "action-adventure",
        "adventure",
        "arcade",
        "driving/racing",
        "fighting",
        "hack-and-slash",
        "indie",
        "music",
        "pinball",
        "platformer",
        "point-and-click",
        "puzzle",
        "real-time strategy",
        "role-playing",
        "shooter",
        "simulation",
        "sport",
        "strategy",
        "tactical",
        "text adventure",
        "trivia/board game",
        "turn-based strategy",
        "vehicular combat",
    ),
    "player_perspective": ("bird view", "first person", "side view", "third person"),
    "platforms": ("Nintendo", "Nintendo Switch", "PC", "PlayStation", "Xbox"),
    "has_multiplayer": _YES_NO,
    "available_on_steam": _YES_NO,
    "has_linux_release": _YES_NO,
    "has_mac_release": _YES_NO,
}
