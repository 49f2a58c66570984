"""Task `kbqa`: questions over an invented knowledge base, answered with a search tool.

The world: countries, cities (each in a country), companies (each based in a city) and people
(each born in a city, each working for a company), all with invented names, so no pretrained
model knows any of it and nothing leaks from the internet. It is rendered as a passage corpus
(`id`, `title`, `text`: one passage per entity, the format the search service indexes).

"Well known" facts play the part of what a base model learned in pre-training: which country
each city is in, and where the famous companies are based. They are taught in the warm-start
data and need no search. Every fact about a person, and where an obscure company is based, is
only in the corpus. So an ideal agent needs 0, 1 or 2 searches:

- `known` (0): "In which country is Tavuno?", "In which city is <famous company> based?"
- `one_hop` (1): "In which city was <person> born?", "Which company does <person> work for?",
  "In which city is <obscure company> based?"
- `two_hop_partial` (1): "In which country was <person> born?" (the city→country hop is
  known), "In which city is the employer of <person> based?" when the employer is famous.
- `two_hop` (2): "In which city is the employer of <person> based?" for an obscure employer.

Every name word has exactly six letters (three consonant-vowel syllables: `Tavuno`), people
and companies are two words, places one. As with `calc`'s fixed-width numbers, this is a
deliberate choice for a character-level policy: every copy it makes (question -> query,
passage -> query or answer) then spans a fixed distance in characters, which a small
transformer learns in minutes on a CPU; with free lengths it would need content-addressed
copying, which it does not learn in that budget (measured with the same recipe: warm-start
EM 0.07 with free-length names, 0.27 with these; docs/testbed.md).
The trade-off between searching and answering from memory is unchanged.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

from paretopo.testbed.splits import Split, item_id, split_of


class KbqaDifficulty(StrEnum):
    KNOWN = "known"
    ONE_HOP = "one_hop"
    TWO_HOP_PARTIAL = "two_hop_partial"
    TWO_HOP = "two_hop"


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str


@dataclass(frozen=True)
class KbqaItem:
    """One `kbqa` question.

    Attributes
    ----------
    id, question, answer, difficulty, min_calls
        As for every testbed item; `answer` is an entity name.
    hops
        The reasoning chain: one `(entity searched for, fact learned, known)` per hop, where
        `known` says whether that fact is well known (answerable without search).
    """

    id: str
    question: str
    answer: str
    difficulty: KbqaDifficulty
    min_calls: int
    hops: tuple[tuple[str, str, bool], ...]

    @property
    def golds(self) -> tuple[str, ...]:
        return (self.answer,)


@dataclass(frozen=True)
class World:
    """The knowledge base. Maps are name → name; `famous` holds the well-known companies."""

    country_of: dict[str, str]
    company_city: dict[str, str]
    born_in: dict[str, str]
    works_for: dict[str, str]
    famous: frozenset[str]

    def passages(self) -> list[Passage]:
        """The corpus: one passage per entity, ids stable for a given seed."""
        out: list[Passage] = []
        for i, (person, city) in enumerate(sorted(self.born_in.items())):
            text = f"{person} was born in {city}. {person} works for {self.works_for[person]}."
            out.append(Passage(f"kb-p{i:04d}", person, text))
        for i, (company, city) in enumerate(sorted(self.company_city.items())):
            out.append(Passage(f"kb-o{i:04d}", company, f"{company} is a company based in {city}."))
        for i, (city, country) in enumerate(sorted(self.country_of.items())):
            out.append(Passage(f"kb-c{i:04d}", city, f"{city} is a city in {country}."))
        for i, country in enumerate(sorted(set(self.country_of.values()))):
            cities = sorted(c for c, k in self.country_of.items() if k == country)
            text = f"{country} is a country. Its cities are {', '.join(cities)}."
            out.append(Passage(f"kb-k{i:04d}", country, text))
        return out


#: The generation of the items a seed gives (see `calc.ITEMS_VERSION`).
ITEMS_VERSION = 1

_ONSETS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
#: Syllables per name word: 70^3 = 343,000 possible words of exactly six letters.
NAME_SYLLABLES = 3


def _name(rng: random.Random) -> str:
    syllables = (rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(NAME_SYLLABLES))
    return "".join(syllables).capitalize()


def _unique_names(rng: random.Random, n: int, make) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        name = make(rng)
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _pairs(words: list[str]) -> list[str]:
    return [f"{a} {b}" for a, b in zip(words[0::2], words[1::2], strict=True)]


@cache
def build_world(
    seed: int = 0,
    *,
    n_countries: int = 6,
    n_cities: int = 30,
    n_companies: int = 30,
    n_famous: int = 8,
    n_people: int = 400,
) -> World:
    """The knowledge base for `seed` (cached: it is pure and used by every split)."""
    rng = random.Random(f"kbqa-world:{seed}")
    words = _unique_names(rng, n_countries + n_cities + 2 * n_companies + 2 * n_people, _name)
    countries, rest = words[:n_countries], words[n_countries:]
    cities, rest = rest[:n_cities], rest[n_cities:]
    companies = _pairs(rest[: 2 * n_companies])
    people = _pairs(rest[2 * n_companies :])
    country_of = {city: countries[i % n_countries] for i, city in enumerate(cities)}
    return World(
        country_of=country_of,
        company_city={c: rng.choice(cities) for c in companies},
        born_in={p: rng.choice(cities) for p in people},
        works_for={p: rng.choice(companies) for p in people},
        famous=frozenset(companies[:n_famous]),
    )


def _person_items(world: World, person: str) -> list[tuple[str, str, KbqaDifficulty, tuple]]:
    city, company = world.born_in[person], world.works_for[person]
    famous = company in world.famous
    employer_hops = ((person, company, False), (company, world.company_city[company], famous))
    return [
        (
            f"In which city was {person} born?",
            city,
            KbqaDifficulty.ONE_HOP,
            ((person, city, False),),
        ),
        (
            f"Which company does {person} work for?",
            company,
            KbqaDifficulty.ONE_HOP,
            ((person, company, False),),
        ),
        (
            f"In which country was {person} born?",
            world.country_of[city],
            KbqaDifficulty.TWO_HOP_PARTIAL,
            ((person, city, False), (city, world.country_of[city], True)),
        ),
        (
            f"In which city is the employer of {person} based?",
            world.company_city[company],
            KbqaDifficulty.TWO_HOP_PARTIAL if famous else KbqaDifficulty.TWO_HOP,
            employer_hops,
        ),
    ]


def all_items(world: World) -> list[KbqaItem]:
    """Every question the world supports, in a fixed order."""
    rows: list[tuple[str, str, KbqaDifficulty, tuple]] = []
    for city, country in sorted(world.country_of.items()):
        rows.append(
            (
                f"In which country is {city}?",
                country,
                KbqaDifficulty.KNOWN,
                ((city, country, True),),
            )
        )
    for company, city in sorted(world.company_city.items()):
        known = company in world.famous
        level = KbqaDifficulty.KNOWN if known else KbqaDifficulty.ONE_HOP
        rows.append((f"In which city is {company} based?", city, level, ((company, city, known),)))
    for person in sorted(world.born_in):
        rows.extend(_person_items(world, person))
    return [
        KbqaItem(
            item_id(f"kbqa:{q}"), q, answer, level, sum(not known for _, _, known in hops), hops
        )
        for q, answer, level, hops in rows
    ]


def generate(split: Split | str, n: int | None = None, *, seed: int = 0) -> list[KbqaItem]:
    """Up to `n` items of one split (all of them when `n` is None), deterministic in the seed.

    The split of a question depends on its text only (`splits.split_of`), so splits are
    disjoint; the seed picks the world and the order of the items.
    """
    split = Split(split)
    items = [it for it in all_items(build_world(seed)) if split_of(f"kbqa:{it.question}") == split]
    random.Random(f"kbqa:{seed}:{split}").shuffle(items)
    return items if n is None else items[:n]


def write_corpus(path: Path, seed: int = 0) -> int:
    """Write the corpus of world `seed` as JSONL (`id`, `title`, `text`; what the search service
    indexes) and return its passage count.

    A file that already holds exactly this text is left alone, so an index built from it stays
    current; any other content (a corpus from an older version of the world) is replaced, so
    a cached index of it is rebuilt instead of silently answering about other entities.
    """
    passages = build_world(seed).passages()
    text = "".join(json.dumps(asdict(p)) + "\n" for p in passages)
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return len(passages)
