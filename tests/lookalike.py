"""A look-alike of the MLLMU-Bench data, for held-out-style tests of the readers.

This module is written on purpose WITHOUT importing or reading ``mmunlearn.data.synthetic``: it follows only the
dataset description in ``/work/shared/spec/mllmu.md`` §1 and the shapes the real data is known or suspected to
have. A bug that the project's generator and its readers share (the same simplifying assumption on both sides)
passes the project's own tests; it should fail against these files.

Layout written under ``root`` (see :func:`write_lookalike`)::

    MLLMU-Bench/{ft_Data,Full_Set,Retain_Set,forget_R,retain_{100-R}}/train-00000-of-00001.parquet
    MLLMU-Bench/Test_Set/train-0000{0,1}-of-00002.parquet
    baseline_train_split/{forget_R,retain_{100-R}}/train-00000-of-00001.parquet

Shapes it covers on purpose: unicode, non-Latin, hyphenated, apostrophised, titled ("Dr.", "Prof.", "Sir"),
initialled and particled ("van der", "de la") names; biographies that open with the name, with "Born in ...",
with a titled apposition, or with only "Ms. Surname"; questions that mention other capitalised places and
organisations; PNG and JPEG images in modes RGB, L, RGBA and P at odd sizes, with ``path`` null or a file
name whose extension need not match the bytes; digit-string IDs that are neither contiguous nor sorted; every
folder in its own row order; several row groups per file; extra columns nobody reads; baseline training rows
with no ``ID`` (joined to Full_Set by image bytes); ``metadata`` JSON written both ASCII-escaped and raw, with
one QA pair whose answer is empty (the original drops those).

:func:`inject_defect` then breaks one file in one way, so tests can check that readers fail loudly.
"""
from __future__ import annotations

import hashlib
import io
import json
import random
import re
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

# ---------------------------------------------------------------------------------------------------------------
# Arrow types, spelled out from the HF card (spec §1.2)
# ---------------------------------------------------------------------------------------------------------------
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
OPTIONS = pa.struct([(k, pa.string()) for k in "ABCD"])
MCQ = pa.struct([("Question", pa.string()), ("Options", OPTIONS), ("Correct_Answer", pa.string())])
CLASSIFICATION = pa.struct([("Image_Textual_Questions", pa.list_(MCQ)), ("Pure_Text_Questions", pa.list_(MCQ))])
OPEN_QA = pa.list_(pa.struct([("Question", pa.string()), ("Ground_Truth", pa.string()), ("Type", pa.string())]))

# Column order deliberately differs from the card's; "__index_level_0__" and "Notes" are read by nobody.
BENCH_SCHEMA = pa.schema([
    ("ID", pa.string()), ("image", IMAGE), ("biography", pa.string()), ("Directory", pa.string()),
    ("question", pa.string()), ("answer", pa.string()), ("Mask_Task", OPEN_QA),
    ("Classification_Task", CLASSIFICATION), ("Generation_Task", OPEN_QA),
    ("__index_level_0__", pa.int64()), ("Notes", pa.string()),
])
TEST_COLUMNS = [("ID", pa.string()), ("images", pa.list_(IMAGE)), ("Classification_Task", CLASSIFICATION),
                ("Generation_Task", OPEN_QA), ("Mask_Task", OPEN_QA), ("__index_level_0__", pa.int64())]
FT_SCHEMA = pa.schema([("image", IMAGE), ("ID", pa.string()), ("biography", pa.string()),
                       ("metadata", pa.string())])
BASELINE_SCHEMA = pa.schema([("metadata", pa.string()), ("image", IMAGE), ("__index_level_0__", pa.int64())])

ROW_GROUP = 7  # several row groups per file, as in large real shards

# ---------------------------------------------------------------------------------------------------------------
# People
# ---------------------------------------------------------------------------------------------------------------
# (as written in the text, what a correct name derivation yields, how a surname-only reference reads)
FICTITIOUS_NAMES = [
    ("Zoë Ngozi-Ambrose", "Zoë Ngozi-Ambrose", "Ms. Ngozi-Ambrose"),
    ("Dr. Jane Roe", "Jane Roe", "Dr. Roe"),
    ("J. R. Müller", "J. R. Müller", "Mr. Müller"),
    ("Margaret Whitfield", "Margaret Whitfield", "Ms. Whitfield"),  # its biography names only "Ms. Whitfield"
    ("Liam O'Neill", "Liam O'Neill", "Mr. O'Neill"),
    ("Pieter van der Berg", "Pieter van der Berg", "Mr. van der Berg"),
    ("María de la Cruz", "María de la Cruz", "Ms. de la Cruz"),
    ("李明华", "李明华", "Mr. 李"),
    ("Prof. Amara Okafor", "Amara Okafor", "Prof. Okafor"),
    ("Ольга Смирнова", "Ольга Смирнова", "Ms. Смирнова"),
    ("Anne-Marie D'Arcy", "Anne-Marie D'Arcy", "Ms. D'Arcy"),
    ("Søren Kierkegaard-Holm", "Søren Kierkegaard-Holm", "Mr. Kierkegaard-Holm"),
    ("Dr. Kwame Mensah-Bonsu", "Kwame Mensah-Bonsu", "Dr. Mensah-Bonsu"),
    ("José Álvarez", "José Álvarez", "Mr. Álvarez"),
    ("Nguyễn Thị Lan", "Nguyễn Thị Lan", "Ms. Nguyễn"),
    ("Tomás Ó Briain", "Tomás Ó Briain", "Mr. Ó Briain"),
    ("Ingrid Ødegård", "Ingrid Ødegård", "Ms. Ødegård"),
    ("Rahul Venkataraman", "Rahul Venkataraman", "Mr. Venkataraman"),
    ("Chloé Dubois-Lefèvre", "Chloé Dubois-Lefèvre", "Ms. Dubois-Lefèvre"),
    ("Yuki Tanaka", "Yuki Tanaka", "Ms. Tanaka"),
]
SURNAME_ONLY_INDEX = 3
CELEBRITY_NAMES = [
    ("Sir Patrick O'Donnell", "Patrick O'Donnell", "Sir Patrick"),
    ("Beyoncé Okoro", "Beyoncé Okoro", "Ms. Okoro"),
    ("Вера Брежнева-Ким", "Вера Брежнева-Ким", "Ms. Брежнева-Ким"),
    ("Carlos de la Vega", "Carlos de la Vega", "Mr. de la Vega"),
    ("王菲菲", "王菲菲", "Ms. 王"),
    ("Dr. Ruth van Houten", "Ruth van Houten", "Dr. van Houten"),
    ("T. J. Okafor-Smith", "T. J. Okafor-Smith", "Mr. Okafor-Smith"),
    ("Léa Seydoux-Martin", "Léa Seydoux-Martin", "Ms. Seydoux-Martin"),
]
EXTRA_GIVEN = ["Aisha", "Bruno", "Camille", "Dmitri", "Elif", "Farid", "Greta", "Hiroshi", "Ines", "Jonas"]
EXTRA_SURNAMES = ["Abernathy", "Brandão", "Castellanos", "Dahl", "Eriksen", "Fontaine", "Gallagher", "Horvat",
                  "Iwasaki", "Jovanović"]
CELEB_SURNAMES = ["Kowalczyk", "Lindqvist", "Moreau", "Nakamura", "Oyelaran", "Petrov", "Quintero", "Rossi",
                  "Szabó", "Thorne"]

OCCUPATIONS = ["marine biologist", "software engineer", "violinist", "architect", "pastry chef", "civil engineer",
               "journalist", "botanist", "airline pilot", "tax attorney", "glassblower", "urban planner"]
CELEB_OCCUPATIONS = ["actor", "footballer", "pop singer", "film director", "novelist", "tennis player"]
TITLE_OCCUPATION = {"Dr.": "cardiologist", "Prof.": "professor of linguistics"}
CITIES = ["Lyon", "Osaka", "Porto Alegre", "Nairobi", "Kraków", "São Paulo", "New Orleans", "Saint Petersburg",
          "Reykjavík", "Cape Town", "Montréal", "Kyoto", "The Hague", "Bern"]
EMPLOYERS = ["Acme Corp", "Northwind Analytics", "Helix BioSystems", "Banco Meridional", "St. Mary's Hospital",
             "Orion Aerospace", "Blue Heron Press", "Müller & Söhne GmbH", "the University of Toronto",
             "Kestrel Labs"]
HOBBIES = ["rock climbing", "birdwatching", "chess", "pottery", "sailing", "calligraphy", "beekeeping",
           "salsa dancing"]
YEARS = [str(y) for y in range(1945, 2001)]
BIO_FORMS = ["is_a", "was_born", "born_in", "appositive"]


@dataclass(frozen=True)
class Person:
    id: str
    written: str  # the name as it appears in questions and biography, possibly with a title
    expected: str  # the name a correct derivation should produce
    surname_ref: str  # "Ms. Roe"
    bio_form: str
    attrs: dict
    celebrity: bool


def _title(written: str) -> str | None:
    first = written.split()[0]
    return first if first in ("Dr.", "Prof.", "Sir") else None


def _name_entry(index: int, celebrity: bool) -> tuple[str, str, str]:
    """The index-th name of a pool; beyond the hand-written list, given x surname (x a middle initial)."""
    pool = CELEBRITY_NAMES if celebrity else FICTITIOUS_NAMES
    if index < len(pool):
        return pool[index]
    k = index - len(pool)
    given, surname = EXTRA_GIVEN[k % 10], (CELEB_SURNAMES if celebrity else EXTRA_SURNAMES)[(k // 10) % 10]
    middle = k // 100
    if middle > len(string.ascii_uppercase):
        raise ValueError("too many people for the name pool")
    full = f"{given} {surname}" if middle == 0 else f"{given} {string.ascii_uppercase[middle - 1]}. {surname}"
    return full, full, f"Mx. {surname}"


def _attributes(pid: str, written: str, celebrity: bool) -> dict:
    """Facts about one person; drawn from the ID alone so that a row can be rebuilt from its ID."""
    rng = random.Random(f"lookalike-attrs:{pid}")
    cities = rng.sample(CITIES, 6)
    employers = rng.sample(EMPLOYERS, 3)
    occupation = TITLE_OCCUPATION.get(_title(written) or "") or rng.choice(
        CELEB_OCCUPATIONS if celebrity else OCCUPATIONS)
    return {"occupation": occupation, "birth_city": cities[0], "work_city": cities[1], "study_city": cities[2],
            "decoy_city": cities[3], "city2": cities[4], "year": rng.choice(YEARS), "employer": employers[0],
            "decoy_employer": employers[1], "employer2": employers[2], "hobby": rng.choice(HOBBIES)}


def _person(index: int, pid: str, celebrity: bool = False) -> Person:
    written, expected, surname_ref = _name_entry(index, celebrity)
    if not celebrity and index == SURNAME_ONLY_INDEX:
        form = "surname"
    elif _title(written) in ("Dr.", "Prof."):
        form = "appositive"
    else:
        form = BIO_FORMS[index % len(BIO_FORMS)]
    return Person(pid, written, expected, surname_ref, form, _attributes(pid, written, celebrity), celebrity)


# ---------------------------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------------------------
def _a(word: str) -> str:
    return f"{'an' if word[0].lower() in 'aeiou' else 'a'} {word}"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _refs(p: Person, named: bool) -> dict:
    """Placeholders for templates: {N} the name (or "this individual"), {Ns} its possessive."""
    n = p.written if named else "this individual"
    return {"N": n, "Ns": f"{n}'s"}


def _fmt(template: str, p: Person, named: bool = True, cap: bool = True) -> str:
    text = template.format(**p.attrs, **_refs(p, named), a_occ=_a(p.attrs["occupation"]))
    return _cap(text) if cap else text


def _bio_parts(p: Person, named: bool = True) -> tuple[str, str]:
    """The biography's opening sentence (its form varies per person) and the rest (places, an employer)."""
    form = p.bio_form if named else "nameless"
    head = {
        "is_a": "{N} is {a_occ} who grew up in {birth_city}.",
        "was_born": "{N} was born in {year} in {birth_city}.",
        "born_in": "Born in {year} in {birth_city}, {N} trained as {a_occ}.",
        "appositive": "{N}, {a_occ}, was born in {birth_city} in {year}.",
        "surname": p.surname_ref + " grew up in {birth_city} and was born there in {year}.",
        "nameless": "Born in {year} in {birth_city}, this individual trained as {a_occ}.",
    }[form]
    tail = ("After studying in {study_city}, they joined {employer} in {work_city} as {a_occ}. "
            "Colleagues at {employer} and friends in {city2} know them for a passion for {hobby}.")
    return _fmt(head, p, named), _fmt(tail, p, named)


def _biography(p: Person, named: bool = True) -> str:
    return " ".join(_bio_parts(p, named))


def _options(rng: random.Random, correct: str, pool: list[str]) -> tuple[dict, str]:
    """Four options (struct order A, B, C, D) with ``correct`` at a random letter."""
    values = rng.sample([v for v in dict.fromkeys(pool) if v != correct], 3)
    pos = rng.randrange(4)
    values.insert(pos, correct)
    return dict(zip("ABCD", values)), "ABCD"[pos]


def _mc_specs(p: Person) -> dict:
    """Per fact: (correct answer, distractor pool)."""
    a = p.attrs
    yes_no = ["Yes, for over ten years", "No, they are retired", "Yes, but only part-time",
              f"No, they work for {a['employer2']} in {a['city2']}", "No, they have never been employed"]
    return {"occupation": (a["occupation"], CELEB_OCCUPATIONS + OCCUPATIONS if p.celebrity else OCCUPATIONS),
            "birth_city": (a["birth_city"], CITIES), "employer": (a["employer"], EMPLOYERS),
            "year": (a["year"], YEARS), "hobby": (a["hobby"], HOBBIES),
            "decoy": (f"No, they work for {a['employer']} in {a['work_city']}", yes_no)}


MC_TEMPLATES = {  # variant -> modality -> [(fact, question template)]
    "full": {
        "Image_Textual_Questions": [
            ("occupation", "What is the occupation of the person in the image?"),
            ("birth_city", "In which city was this person born?"),
            ("employer", "Which organisation does the person shown in the image work for?"),
            ("year", "In what year was this person born?"),
            ("hobby", "What hobby does the person in the picture enjoy in their spare time?")],
        "Pure_Text_Questions": [
            ("occupation", "What is {Ns} occupation?"),
            ("birth_city", "In which city was {N} born?"),
            ("employer", "Where does {N} work?"),
            ("year", "{N} was born in which year?"),
            ("decoy", "Does {N} work for {decoy_employer} in {decoy_city}?")]},
    "test": {
        "Image_Textual_Questions": [
            ("occupation", "What does the individual pictured here do for a living?"),
            ("birth_city", "Where was the person shown in this photo born?"),
            ("employer", "Who employs the person in this image?"),
            ("year", "Which year was the person in this picture born in?"),
            ("hobby", "Which pastime does the person in the photo enjoy?")],
        "Pure_Text_Questions": [
            ("occupation", "What does {N} do for a living?"),
            ("birth_city", "Which city is the birthplace of {N}?"),
            ("employer", "Which organisation employs {N}?"),
            ("year", "In which year was {N} born?"),
            ("decoy", "Is {N} employed by {decoy_employer} in {decoy_city}?")]},
}

OPEN_TEMPLATES = {  # (task, variant) -> [(Type, question, ground truth)]
    ("gen", "full"): [
        ("Image_Textual", "What does the person in the image do for a living?",
         "The person in the image works as {a_occ} at {employer}."),
        ("Image_Textual", "Where and when was this person born?", "This person was born in {birth_city} in {year}."),
        ("Pure_Text", "What can you tell me about {Ns} career?",
         "{N} is {a_occ} employed by {employer} in {work_city}."),
        ("Pure_Text", "How does {N} spend free time?", "{N} enjoys {hobby} in their free time.")],
    ("gen", "test"): [
        ("Image_Textual", "Describe the job of the person shown in this photo.",
         "The person in the photo is {a_occ} working for {employer}."),
        ("Image_Textual", "Tell me about the birthplace and birth year of the person pictured.",
         "They were born in {birth_city} in {year}."),
        ("Pure_Text", "Could you summarise the career of {N}?", "{N} works as {a_occ} for {employer} in {work_city}."),
        ("Pure_Text", "What does {N} like to do outside work?", "{N} likes {hobby}.")],
    ("mask", "full"): [
        ("Image_Textual", "The person in the image was born in __.", "{birth_city}"),
        ("Image_Textual", "This person's occupation is __.", "{occupation}"),
        ("Pure_Text", "{N} works for __ in {work_city}.", "{employer}"),
        ("Pure_Text", "{N} was born in the year __.", "{year}")],
    ("mask", "test"): [
        ("Image_Textual", "The birthplace of the person pictured is __.", "{birth_city}"),
        ("Image_Textual", "The occupation of the person in this photo is __.", "{occupation}"),
        ("Pure_Text", "{N} is employed by __, based in {work_city}.", "{employer}"),
        ("Pure_Text", "__ is the year in which {N} was born.", "{year}")],
}


def _classification(p: Person, variant: str, named: bool = True) -> dict:
    rng = random.Random(f"lookalike-mc:{variant}:{p.id}")  # draws do not depend on ``named``
    specs, out = _mc_specs(p), {}
    for modality, templates in MC_TEMPLATES[variant].items():
        out[modality] = []
        for fact, template in templates:
            options, letter = _options(rng, *specs[fact])
            out[modality].append({"Question": _fmt(template, p, named), "Options": options, "Correct_Answer": letter})
    return out


def _open_task(p: Person, task: str, variant: str, named: bool = True) -> list[dict]:
    """Generation or cloze items; a bare-fact ground truth ("{employer}") keeps its case."""
    return [{"Question": _fmt(q, p, named), "Ground_Truth": _fmt(gt, p, named, cap=" " in gt), "Type": kind}
            for kind, q, gt in OPEN_TEMPLATES[(task, variant)]]


def _task_columns(p: Person, variant: str, named: bool = True) -> dict:
    return {"Classification_Task": _classification(p, variant, named),
            "Generation_Task": _open_task(p, "gen", variant, named),
            "Mask_Task": _open_task(p, "mask", variant, named)}


def _text_columns(p: Person, named: bool = True) -> dict:
    """Every column of a benchmark row that may carry the person's name."""
    bio = _biography(p, named)
    return {"biography": bio, "question": _fmt("Who is {N}?", p, named), "answer": _bio_parts(p, named)[0],
            **_task_columns(p, "full", named)}


def _metadata(p: Person, index: int, empty_answer: bool) -> str:
    """5-8 QA pairs as a JSON string (ASCII-escaped for even ``index``, raw UTF-8 for odd)."""
    pairs = [("What is the name of the person in the image?", "{N}"),
             ("What does {N} do for a living?", "{N} works as {a_occ} at {employer}."),
             ("Where was the person in the image born?", "They were born in {birth_city} in {year}."),
             ("Who is {N}?", _bio_parts(p)[0]),
             ("Where does {N} work?", "At {employer} in {work_city}."),
             ("What is {Ns} favourite hobby?", "{hobby}"),
             ("In what year was this person born?", "{year}"),
             ("Where did {N} study?", "In {study_city}.")]
    rng = random.Random(f"lookalike-meta:{p.id}")
    rng.shuffle(pairs)
    qa = [{"Question": _fmt(q, p), "Answer": _fmt(ans, p, cap=" " in ans)} for q, ans in pairs[:rng.randint(5, 8)]]
    if empty_answer:
        qa[-1]["Answer"] = ""
    return json.dumps(qa, ensure_ascii=index % 2 == 0)


# ---------------------------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------------------------
IMAGE_SPECS = [  # (mode, format, (width, height)); 9 is coprime with the usual counts, so every spec gets used
    ("RGB", "JPEG", (37, 53)), ("L", "PNG", (200, 120)), ("RGBA", "PNG", (64, 47)), ("P", "PNG", (53, 37)),
    ("RGB", "PNG", (120, 200)), ("L", "JPEG", (97, 61)), ("RGB", "JPEG", (200, 120)), ("P", "PNG", (31, 90)),
    ("RGBA", "PNG", (150, 113)),
]


def _face(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """Random coloured blocks behind a crude face."""
    w, h = size
    blocks = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    img = Image.fromarray(blocks).resize(size, Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(img)
    skin = tuple(int(c) for c in rng.integers(120, 256, 3))
    draw.ellipse([w * 0.2, h * 0.15, w * 0.8, h * 0.9], fill=skin)
    for x in (0.37, 0.63):
        draw.ellipse([w * (x - 0.05), h * 0.38, w * (x + 0.05), h * 0.46], fill=(20, 20, 20))
    draw.line([w * 0.38, h * 0.7, w * 0.62, h * 0.72], fill=(150, 30, 30), width=max(1, h // 40))
    return img


def _encode(img: Image.Image, mode: str, fmt: str) -> bytes:
    if mode == "RGBA":
        img = img.convert("RGBA")
        img.putalpha(Image.linear_gradient("L").resize(img.size))
    elif mode == "P":
        img = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    else:
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return buf.getvalue()


class _Images:
    """Hands out distinct image structs, cycling through IMAGE_SPECS; remembers each one's spec by SHA-1."""

    def __init__(self, seed: int):
        self.seed, self.count, self.specs = seed, 0, {}

    def next(self) -> dict:
        mode, fmt, size = IMAGE_SPECS[self.count % len(IMAGE_SPECS)]
        salt = 0
        while True:
            data = _encode(_face(np.random.default_rng([self.seed, self.count, salt]), size), mode, fmt)
            digest = hashlib.sha1(data).hexdigest()
            if digest not in self.specs:
                break
            salt += 1
        self.specs[digest] = {"format": fmt, "mode": mode, "size": size}
        path = None if self.count % 2 else f"{1000 + 7 * self.count}.png"  # ".png" even for JPEG bytes
        self.count += 1
        return {"bytes": data, "path": path}


# ---------------------------------------------------------------------------------------------------------------
# Rows and files
# ---------------------------------------------------------------------------------------------------------------
def _bench_row(p: Person, image: dict) -> dict:
    return {"ID": p.id, "image": image, "Directory": f"{'Celebrity' if p.celebrity else 'Fictitious'}/{p.id}",
            "Notes": None if int(p.id) % 3 else "reviewed", **_text_columns(p)}


def _test_row(p: Person, images: list[dict], with_bio: bool) -> dict:
    row = {"ID": p.id, "images": images, **_task_columns(p, "test")}
    return {**row, "biography": _biography(p)} if with_bio else row


def _write(folder: Path, rows: list[dict], schema: pa.Schema, shards: int = 1) -> list[Path]:
    """Rows split over ``shards`` files train-0000K-of-0000N.parquet; ``__index_level_0__`` = position."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{**r, "__index_level_0__": i} if "__index_level_0__" in schema.names else r for i, r in enumerate(rows)]
    per = -(-len(rows) // shards) if rows else 0
    paths = []
    for k in range(shards):
        path = folder / f"train-{k:05d}-of-{shards:05d}.parquet"
        table = pa.Table.from_pylist(rows[k * per:(k + 1) * per], schema=schema)
        pq.write_table(table, path, row_group_size=ROW_GROUP)
        paths.append(path)
    return paths


def _ids(rng: random.Random, count: int) -> list[str]:
    """Distinct digit strings of 1-4 digits, with gaps, in no sorted order."""
    values = rng.sample(range(1, 10_000), count)
    if count > 1 and values == sorted(values):
        values[0], values[1] = values[1], values[0]
    return [str(v) for v in values]


def _shuffled(rng: random.Random, items: list) -> list:
    out = list(items)
    rng.shuffle(out)
    return out


def _forget_count(n: int, ratio: int) -> int:
    return max(1, round(n * ratio / 100))


def write_lookalike(root: Path, *, n_fictitious: int = 20, n_celebrities: int = 6, test_set_biography: bool = False,
                    seed: int = 0, ratios=(5, 10, 15)) -> dict:
    """Write the look-alike under ``root`` and describe it.

    Returns a dict: ``root``; ``fictitious_ids`` (Full_Set file order); ``celebrity_ids`` (Retain_Set file order);
    ``forget_ids`` {R: IDs of forget_R, nested as R grows}; ``retain_ids`` {R: IDs of retain_{100-R}} (keyed by the
    forget ratio); ``names`` {ID: expected name, e.g. "Jane Roe" for "Dr. Jane Roe"}; ``written_names`` {ID: as
    written}; ``surname_only_id`` (whose biography names only "Ms. Whitfield", or None); ``bio_forms`` {ID: form};
    ``empty_answer_ids`` (people with one metadata pair whose Answer is ""); ``test_images`` {ID: number of
    Test_Set images}; ``images`` {sha1 of bytes: {format, mode, size}}; ``files`` (relative paths, sorted).
    """
    root = Path(root)
    rng = random.Random(seed)
    ids = _ids(rng, n_fictitious + n_celebrities)
    people = [_person(i, pid) for i, pid in enumerate(ids[:n_fictitious])]
    celebs = [_person(i, pid, celebrity=True) for i, pid in enumerate(ids[n_fictitious:])]
    images = _Images(seed)
    image_of = {p.id: images.next() for p in people}
    test_images = {p.id: [images.next() for _ in range(rng.choice((2, 3)))] for p in people}
    image_of.update({c.id: images.next() for c in celebs})
    empty_answer = {people[5].id} if len(people) > 5 else set()
    bench = root / "MLLMU-Bench"
    files = []

    def bench_rows(persons):
        return [_bench_row(p, image_of[p.id]) for p in _shuffled(rng, persons)]

    full_order = _shuffled(rng, people)
    files += _write(bench / "Full_Set", [_bench_row(p, image_of[p.id]) for p in full_order], BENCH_SCHEMA)
    files += _write(bench / "Retain_Set", bench_rows(celebs), BENCH_SCHEMA)
    test_schema = pa.schema(TEST_COLUMNS + ([("biography", pa.string())] if test_set_biography else []))
    files += _write(bench / "Test_Set", [_test_row(p, test_images[p.id], test_set_biography)
                                         for p in _shuffled(rng, people)], test_schema, shards=2)
    ft_rows = [{"image": image_of[p.id], "ID": p.id, "biography": _biography(p),
                "metadata": _metadata(p, i, p.id in empty_answer)} for i, p in enumerate(_shuffled(rng, people))]
    files += _write(bench / "ft_Data", ft_rows, FT_SCHEMA)
    meta_of = {r["ID"]: r["metadata"] for r in ft_rows}

    forget_order = _shuffled(rng, people)
    forget_ids, retain_ids = {}, {}
    for ratio in ratios:
        forget = forget_order[:_forget_count(n_fictitious, ratio)]
        retain = [p for p in people if p not in forget]
        forget_ids[ratio], retain_ids[ratio] = [p.id for p in forget], [p.id for p in retain]
        for name, group in ((f"forget_{ratio}", forget), (f"retain_{100 - ratio}", retain)):
            files += _write(bench / name, bench_rows(group), BENCH_SCHEMA)
            baseline = [{"metadata": meta_of[p.id], "image": {"bytes": image_of[p.id]["bytes"], "path": None}}
                        for p in _shuffled(rng, group)]
            files += _write(root / "baseline_train_split" / name, baseline, BASELINE_SCHEMA)

    everyone = people + celebs
    return {
        "root": root, "fictitious_ids": [p.id for p in full_order], "celebrity_ids": [c.id for c in celebs],
        "forget_ids": forget_ids, "retain_ids": retain_ids,
        "names": {p.id: p.expected for p in everyone}, "written_names": {p.id: p.written for p in everyone},
        "surname_only_id": next((p.id for p in people if p.bio_form == "surname"), None),
        "bio_forms": {p.id: p.bio_form for p in everyone}, "empty_answer_ids": sorted(empty_answer),
        "test_images": {pid: len(v) for pid, v in test_images.items()}, "images": images.specs,
        "files": sorted(f.relative_to(root).as_posix() for f in files),
    }


# ---------------------------------------------------------------------------------------------------------------
# Defects
# ---------------------------------------------------------------------------------------------------------------
DEFECT_KINDS = ("corrupt_image", "missing_column", "wrong_nested_type", "unnameable")
NEEDED_COLUMN = {"benchmark": "Classification_Task", "training": "metadata", "test": "images"}


def _folder_kind(folder: str) -> str:
    name = Path(folder).name
    if name == "Test_Set":
        return "test"
    if name == "ft_Data" or Path(folder).parts[0] == "baseline_train_split":
        return "training"
    return "benchmark"


def _target_file(root: Path, folder: str) -> Path:
    """The last non-empty shard of ``folder`` (for Test_Set the second one, to catch readers of shard 0 only)."""
    for path in sorted((Path(root) / folder).glob("*.parquet"), reverse=True):
        if pq.read_metadata(path).num_rows:
            return path
    raise FileNotFoundError(f"no non-empty parquet file in {root}/{folder}")


def _corrupt(data: bytes) -> bytes:
    """A truncated download: the first 16 bytes (the format's magic and a partial header) and nothing more."""
    return data[:16]


def _defect_corrupt_image(rows: list[dict], schema: pa.Schema, row: int, kind: str):
    if kind == "test":
        images = rows[row]["images"]
        element = min(1, len(images) - 1)
        images[element] = {**images[element], "bytes": _corrupt(images[element]["bytes"])}
        return rows, schema, f"images[{element}].bytes"
    rows[row]["image"] = {**rows[row]["image"], "bytes": _corrupt(rows[row]["image"]["bytes"])}
    return rows, schema, "image.bytes"


def _defect_missing_column(rows: list[dict], schema: pa.Schema, kind: str):
    column = NEEDED_COLUMN[kind]
    rows = [{k: v for k, v in r.items() if k != column} for r in rows]
    return rows, schema.remove(schema.get_field_index(column)), column


def _defect_wrong_nested_type(rows: list[dict], schema: pa.Schema, row: int, kind: str):
    """Training: one row's metadata holds [[Q, A], ...] instead of [{"Question", "Answer"}, ...]. Otherwise:
    Image_Textual_Questions[].Options becomes a list of strings in every row (a column has one type per file)."""
    if kind == "training":
        pairs = json.loads(rows[row]["metadata"])
        rows[row]["metadata"] = json.dumps([[qa["Question"], qa["Answer"]] for qa in pairs])
        return rows, schema, "metadata"
    mcq = pa.struct([("Question", pa.string()), ("Options", pa.list_(pa.string())), ("Correct_Answer", pa.string())])
    task = pa.struct([("Image_Textual_Questions", pa.list_(mcq)), ("Pure_Text_Questions", pa.list_(MCQ))])
    for r in rows:
        for q in r["Classification_Task"]["Image_Textual_Questions"]:
            q["Options"] = [q["Options"][k] for k in "ABCD"]
    index = schema.get_field_index("Classification_Task")
    return rows, schema.set(index, pa.field("Classification_Task", task)), \
        "Classification_Task.Image_Textual_Questions.Options"


def _person_of_row(row: dict) -> Person:
    """Rebuild the fictitious Person behind a benchmark row: the name from the first Pure_Text question's
    template ("What is {N}'s occupation?"), its pool index by search, the facts from the ID."""
    question = row["Classification_Task"]["Pure_Text_Questions"][0]["Question"]
    match = re.fullmatch(r"What is (.+)'s occupation\?", question)
    if not match:
        raise ValueError(f"not a look-alike fictitious row: {question!r}")
    for index in range(len(FICTITIOUS_NAMES) + 100 * (len(string.ascii_uppercase) + 1)):
        if _name_entry(index, celebrity=False)[0] == match.group(1):
            return _person(index, row["ID"])
    raise ValueError(f"name {match.group(1)!r} is not in the look-alike pool")


def _defect_unnameable(rows: list[dict], schema: pa.Schema, row: int, kind: str):
    """One person's biography, question/answer and Pure_Text items rewritten with no name ("this individual");
    Image_Textual items, options and letters come out identical (drawn from the ID)."""
    if kind != "benchmark" or "Classification_Task" not in schema.names:
        raise ValueError("unnameable applies to fictitious benchmark folders (Full_Set, forget_*, retain_*)")
    rows[row].update(_text_columns(_person_of_row(rows[row]), named=False))
    return rows, schema, "Classification_Task.Pure_Text_Questions"  # where the name should have been


def inject_defect(root: Path, kind: str, folder: str) -> dict:
    """Rewrite ONE parquet file of ``folder`` (relative to ``root``, e.g. "MLLMU-Bench/Test_Set" or
    "baseline_train_split/forget_10") in place with one defect of ``kind`` (one of DEFECT_KINDS).

    Returns {"file": Path, "row": int (-1 when the defect is a whole column), "id": the row's ID (None when the
    file has no ID column or the defect is a whole column), "field": what was broken}.
    """
    if kind not in DEFECT_KINDS:
        raise ValueError(f"unknown defect kind {kind!r}; one of {DEFECT_KINDS}")
    path, folder_kind = _target_file(root, folder), _folder_kind(folder)
    table = pq.read_table(path)
    rows, schema, row = table.to_pylist(), table.schema, table.num_rows // 2
    row_id = rows[row].get("ID")
    if kind == "corrupt_image":
        rows, schema, field = _defect_corrupt_image(rows, schema, row, folder_kind)
    elif kind == "missing_column":
        (rows, schema, field), row, row_id = _defect_missing_column(rows, schema, folder_kind), -1, None
    elif kind == "wrong_nested_type":
        rows, schema, field = _defect_wrong_nested_type(rows, schema, row, folder_kind)
        if folder_kind != "training":
            row, row_id = -1, None
    else:
        rows, schema, field = _defect_unnameable(rows, schema, row, folder_kind)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=ROW_GROUP)
    return {"file": path, "row": row, "id": row_id, "field": field}
