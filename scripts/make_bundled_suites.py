"""Regenerate the small held-out suites bundled with driftlab (src/driftlab/suites/*.jsonl).

They cover what reasoning-gym does not: world knowledge and word meaning (multiple choice, scored by
log-likelihood) and plain instruction following (copy a word exactly). Deterministic: same seed, same files.
    python scripts/make_bundled_suites.py
"""

import json
import random
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


def copy_word(rng):
    for word in WORDS:
        yield {"question": f"Repeat this word exactly and write nothing else: {word}", "answer": word}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, gen in [("capitals", capitals), ("opposites", opposites), ("copy_word", copy_word)]:
        rows = list(gen(random.Random(1234)))
        (OUT / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        print(f"{name}: {len(rows)} items")


if __name__ == "__main__":
    main()
