"""Each person's name, for the text-only variant (the QA pairs name the person instead of showing the image).

What the real data looks like, as far as known (shared/spec §1.2, §2): the ``Pure_Text`` questions of the
classification, generation and cloze tasks ask about the person *by name* ("What is Jane Roe's occupation?"):
they have no image to point at, so they must. That is confirmed by the task's design and the original's prompts.
How the biographies open is UNCONFIRMED ("Jane Roe is ...", "Born in 1970 in Lyon, Jane Roe ...", "Dr. Roe, a
cardiologist, ..." all occur in generated biographies), and so are titles, initials, particles and scripts.

So the name is derived from the questions, not from the biography:

1. every question is cut into *spans*: maximal runs of name-like tokens (a capitalised word, a caseless
   letter run such as 王小明, an initial "J.", a particle such as "van"/"de la" between two of those),
   possessives ("'s") cut off, question and sentence-start words ("What", "Does", "In") and titles
   ("Dr.", "Prof.") dropped from the front;
2. every contiguous part of a span is a candidate; its *support* is the number of questions holding it;
3. the name is the longest candidate held by at least half of the questions (at least two when there are
   two or more): the full name wins over a surname used alone, a city named in one question never qualifies;
   ties go to the candidate the biography holds, then to the better supported one, then to the one the
   biography names first;
4. the biography cross-checks it: a name the biography does not mention (not even the surname) is a warning.

Rows without questions (a training-format corpus used as replay data) fall back to the biography: its most
repeated span, or the span that opens it ("<Name> is ..."). A person with no derivable name is an error at
validation, naming the profile; ``data.names: {ID: name}`` overrides any person's name.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

# Words that start a question or sentence, capitalised for that reason alone.
_LEADING = set("""what which where when who whom whose how why is are was were does did do has have had can could
would will should shall may might in on at of for from to by with as after before during since until the a an
and or but if please name describe tell list give according based given considering besides apart although
regarding born being also this that these those there here""".split())
_TITLES = {"dr", "dr.", "prof", "prof.", "mr", "mr.", "mrs", "mrs.", "ms", "ms.", "miss", "mx", "mx.", "sir", "dame",
           "lord", "lady", "professor", "doctor", "rev", "rev.", "st", "st."}
# Lower-case parts of names, allowed between two name words ("Ana de la Cruz", "Pieter van der Berg").
_PARTICLES = {"van", "von", "der", "den", "de", "del", "della", "di", "da", "dos", "das", "du", "la", "le", "bin",
              "binti", "ibn", "al", "el", "ter", "ten", "zu", "y"}
_TOKEN = re.compile(r"[^\W\d_](?:[\w'’\-.]*[^\W_])?\.?", re.UNICODE)
_POSSESSIVE = re.compile(r"['’]s?$")


def _is_name_word(tok: str) -> bool:
    first = tok[0]
    if first.isupper():
        return True
    # scripts without case (CJK, Arabic, Hebrew, ...): a letter that is neither upper nor lower case
    return unicodedata.category(first) == "Lo"


def spans(text: str) -> list[tuple[str, ...]]:
    """Maximal runs of name-like tokens in ``text`` (see module docstring, step 1)."""
    out, run = [], []

    def close():
        while run and run[-1].lower() in _PARTICLES:  # a particle must sit between name words
            run.pop()
        while run and (run[0].lower() in _LEADING or run[0].lower() in _TITLES):
            run.pop(0)
        if run:
            out.append(tuple(run))
        run.clear()

    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        # a gap of anything but spaces (a comma, a question mark) ends the run
        if run and text[prev_end:m.start()].strip():
            close()
        possessive = _POSSESSIVE.search(tok) is not None and len(tok) > 2
        word = _POSSESSIVE.sub("", tok) if possessive else tok
        sentence_end = word.endswith(".") and len(word.rstrip(".")) > 1 and word.rstrip(".").lower() not in _TITLES
        word = word.rstrip(".") if sentence_end else word
        if _is_name_word(word) or (run and word.lower() in _PARTICLES):
            run.append(word)
        else:
            close()
        if possessive or sentence_end:
            close()
        prev_end = m.end()
    close()
    return out


def _parts(span: tuple[str, ...]) -> set[tuple[str, ...]]:
    return {span[i:j] for i in range(len(span)) for j in range(i + 1, len(span) + 1)
            if span[i].lower() not in _PARTICLES and span[j - 1].lower() not in _PARTICLES
            and span[i].lower() not in _TITLES}


def name_from_questions(questions: list[str], biography: str = "") -> str | None:
    """The name the questions agree on (module docstring, steps 2-3), or None."""
    per_question = [spans(q) for q in questions if q.strip()]
    if not per_question:
        return None
    support = Counter()
    for qs in per_question:
        support.update({part for s in qs for part in _parts(s)})
    need = max(2 if len(per_question) >= 2 else 1, (len(per_question) + 1) // 2)
    bio = " ".join(" ".join(s) for s in spans(biography))

    def rank(c):  # longer, then in the biography, then better supported, then earlier in the biography
        at = bio.find(" ".join(c))
        return len(c), at >= 0, support[c], -at if at >= 0 else 0

    ranked = sorted((c for c, n in support.items() if n >= need), key=rank, reverse=True)
    return " ".join(ranked[0]) if ranked else None


def name_from_biography(biography: str) -> str | None:
    """For rows without questions: the biography's most repeated span of two words or more, else its opening
    span when the biography starts with it."""
    found = spans(biography)
    counts = Counter(part for s in found for part in _parts(s) if len(part) >= 2)
    repeated = sorted((c for c, n in counts.items() if n >= 2), key=lambda c: (counts[c], len(c)), reverse=True)
    if repeated:
        return " ".join(repeated[0])
    opening = spans(biography.split(".")[0] + ".")
    first = biography.strip().split(" ", 1)[0].rstrip(",")
    if opening and first and opening[0][0] == first:
        return " ".join(opening[0])
    return None


def mentions(biography: str, name: str) -> bool:
    """Whether the biography names the person (the full name, or its last word: "Ms. Roe")."""
    return bool(name) and (name in biography or name.split()[-1] in biography)
