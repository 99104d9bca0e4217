#!/usr/bin/env python3
"""Writes tests/goldens/rewards.json: Python difflib SequenceMatcher ratios (MRCR's dense reward) for pairs of
strings, including long ones where difflib's automatic junk rule applies, so similarityRatio can be checked
against the reference implementation.  Run: python3 scripts/golden/rewards.py
"""
import difflib
import json
import os
import random

random.seed(7)
words = "the of and a to in is was he for it with as his on be at by had not are but from or have an they which".split()


def text(n):
    return " ".join(random.choice(words) for _ in range(n))


pairs = [
    ("", ""), ("abc", ""), ("abcd", "bcde"), ("kitten", "sitting"), ("The quick brown fox", "the quick brown fox!"),
    ("naïve café", "naive cafe"), ("aaaaaaaaaa", "aaaa"), ("ab" * 150, "ba" * 150),
]
base = text(120)
pairs.append((base, base.replace("the", "a", 5)))
pairs.append((text(80), text(90)))
pairs.append((base[:300], base[100:500]))
long_a = text(400)
pairs.append((long_a, long_a[::-1]))
pairs.append((long_a, long_a[:-50] + text(10)))
out = [{"a": a, "b": b, "ratio": difflib.SequenceMatcher(None, a, b).ratio()} for a, b in pairs]
path = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "goldens", "rewards.json")
with open(path, "w") as f:
    json.dump(out, f, ensure_ascii=False)
print(f"wrote {len(out)} pairs to {os.path.relpath(path)}")
