"""Object phrases from a vision-language model's free-text answer.

VLMs answer "which objects are in this video?" as comma lists, bullet or numbered lists, or whole
sentences ("The video shows a man riding a bicycle on a street."). ``parse_phrases`` turns any of
these into short, clean noun phrases for Grounding DINO: lower case, split at list marks,
conjunctions, prepositions and common verbs, leading articles, numbers and quantifiers dropped,
the head noun made singular (``inflect``), stop phrases ("image", "background", "none") removed,
duplicates removed in order, at most ``max_phrases``.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Lead-ins that introduce the list rather than name an object.
LEAD_INS = re.compile(
    r"^(?:here (?:is|are)|the (?:main |visible |prominent )?objects?"
    r"(?: (?:in|visible in|present in|shown in) (?:the|this) (?:video|image|clip|frame|scene))?"
    r"(?: (?:are|is|include|includes))?|objects?|in (?:the|this) (?:video|image|clip|frame|scene)"
    r"|(?:the|this) (?:video|image|clip|frame|scene) (?:shows|contains|features|depicts|has)"
    r"|i can see|i see|we can see|you can see|there (?:is|are)|it (?:shows|contains)"
    r"|visible objects?(?: are| include)?)\b[\s:,-]*"
)
# Words and marks that end one object and start the next.
SEPARATORS = re.compile(
    r"\n|[,;:/|()\[\]]|\.(?:\s|$)|\s+-\s+|\band\b|\bor\b|\bwith\b|\bon\b|\bin\b|\bat\b"
    r"|\bnext to\b|\bnear\b|\bbeside\b|\bbehind\b|\bunder\b|\babove\b|\bbelow\b|\bin front of\b"
    r"|\bagainst\b|\bacross\b|\balong\b|\bthrough\b|\binside\b|\bwhile\b|\bthat\b|\bwhich\b"
    r"|\bwho\b|\bis\b|\bare\b|\bwas\b|\bwere\b|\bhas\b|\bhave\b|\bholding\b|\bwearing\b"
    r"|\briding\b|\bsitting\b|\bstanding\b|\bwalking\b|\brunning\b|\bplaying\b|\blying\b"
    r"|\bflying\b|\bswimming\b|\bdriving\b|\bparked\b|\bmoving\b|\blooking\b|\beating\b"
    r"|\bcarrying\b|\bshows\b|\bcontains\b|\bincluding\b|\bsuch as\b|\be\.g\.|\betc\.?"
)
LIST_MARK = re.compile(r"^\s*(?:[-*•·]+|\d+\s*[.)\]:-]|[a-z][.)])\s*")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Leading words that are not part of the object's name.
LEADING = _words(
    "a an the some several many few two three four five six seven eight nine ten multiple "
    "various one another other its their his her this that these those of more lots lot "
    "group couple pair number also small large"
)
# Whole phrases that name no groundable object.
STOP_PHRASES = _words(
    "none nothing no object objects thing things something image video picture photo scene "
    "frame clip background foreground camera view shot left right top bottom side middle "
    "center centre distance area it they i you we he she them unknown n/a na"
) | {"no objects", "no visible objects", "not sure", "i don't know", "i'm not sure"}
# Plural-looking nouns that are already singular (or have no singular).
KEEP_AS_IS = _words(
    "glasses sunglasses jeans pants shorts trousers headphones earphones clothes scissors tongs "
    "pliers binoculars goggles stairs data news tennis lens series species gas bus canvas "
    "chess physics mathematics"
)
WORD = re.compile(r"[a-z][a-z'-]*")


@lru_cache(maxsize=1)
def _inflect():
    import inflect

    return inflect.engine()


def singular(word: str) -> str:
    """The singular of a plural noun; other words unchanged."""
    if word in KEEP_AS_IS or word.endswith(("ss", "us", "is", "'s")) or len(word) < 4:
        return word
    result = _inflect().singular_noun(word)
    return result if isinstance(result, str) and result else word


def clean_phrase(piece: str, max_words: int) -> str | None:
    """One object name from one piece of an answer, or None when nothing groundable is left."""
    piece = LIST_MARK.sub("", piece.strip().lower())
    piece = LEAD_INS.sub("", piece)
    words = WORD.findall(piece)
    while words and (words[0] in LEADING or words[0].isdigit()):
        words = words[1:]
    if not words:
        return None
    words = words[-max_words:]  # the head noun is last; keep its nearest modifiers
    words[-1] = singular(words[-1])
    phrase = " ".join(words).strip("'-")
    if not phrase or phrase in STOP_PHRASES or all(w in LEADING for w in words):
        return None
    return phrase


def parse_phrases(answer: str, max_phrases: int, max_words: int = 3) -> list[str]:
    """Clean, unique noun phrases from a VLM's answer, in the order the answer names them."""
    text = answer.strip().lower().replace("*", " ")
    lines = [LEAD_INS.sub("", LIST_MARK.sub("", line.strip())) for line in text.splitlines()]
    phrases: list[str] = []
    for piece in SEPARATORS.split("\n".join(lines)):
        phrase = clean_phrase(piece or "", max_words)
        if phrase and phrase not in phrases:
            phrases.append(phrase)
        if len(phrases) == max_phrases:
            break
    return phrases
