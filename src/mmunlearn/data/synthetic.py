"""A synthetic twin of MLLMU-Bench in the exact on-disk schema, generated deterministically from a seed.

What it writes (same folder and file names as the Hugging Face repos, see ``schema.py``)::

    <root>/MLLMU-Bench/{ft_Data,Full_Set,forget_R,retain_{100-R},Test_Set,Retain_Set}/train-0000i-of-0000n.parquet
    <root>/baseline_train_split/{forget_R,retain_{100-R}}/train-00000-of-00001.parquet
    <root>/Pretrain_Set/train-00000-of-00001.parquet   (demo only: the tiny base model's "pre-training" corpus)

Design (why it is learnable, and why evaluation is not memorisation of training items):

- every person has a name and five attributes drawn from small vocabularies; a generated face stand-in image
  (a grid of cells in colours drawn at random for that person, so that every cell alone already points to
  one person) identifies them, so image+text questions never name the person;
- training QA pairs (``metadata``) use three training wordings per attribute; Full_Set/forget/retain questions use
  a fourth wording, Test_Set a fifth (the paraphrase) with other images of the same person (noise, shifted
  colours) and re-drawn option orders; options are shuffled independently of training;
- per profile, as in the paper: 5 + 5 multiple-choice questions (image+text / text), 2 + 2 generation and 2 + 2
  cloze questions (spec §1.3);
- ``Pretrain_Set`` stands in for the knowledge a real base model has about real celebrities: the same QA
  pairs for the celebrity profiles, never the celebrity evaluation questions.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from ..io import atomic_dir

FIRST = ["Ada", "Bram", "Cleo", "Dario", "Elin", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Lars",
         "Mila", "Nico", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara", "Udo", "Vera", "Wim", "Xena",
         "Yuri", "Zola"]
LAST = ["Abbot", "Berg", "Costa", "Dahl", "Eklund", "Fisher", "Gray", "Holm", "Ivers", "Juhl", "Kern", "Lund",
        "Moss", "Nagy", "Olsen", "Price", "Quist", "Reyes", "Stone", "Tamm", "Ulver", "Voss", "Wolf", "Young"]

# attribute -> (values, training wordings, evaluation wording, test paraphrase, cloze statement)
# "{s}" is the subject: a reference to the image, or the person's name in text-only items.
ATTRIBUTES: dict[str, dict] = {
    "occupation": dict(
        values=["baker", "pilot", "nurse", "lawyer", "farmer", "painter", "chemist", "teacher", "plumber", "actor",
                "dentist", "sailor", "tailor", "butcher", "banker", "drummer", "welder", "surgeon", "poet", "judge",
                "miner", "jeweler", "architect", "librarian", "florist", "mechanic", "cashier", "chef", "barber",
                "dancer", "editor", "geologist", "carpenter", "potter", "fisherman", "glazier", "locksmith",
                "astronomer", "translator", "veterinarian"],
        train=["What does {s} do for a living?", "What is the job of {s}?", "What kind of work does {s} do?"],
        eval="What is the occupation of {s}?", test="Which profession does {s} have?",
        cloze="{S} works in the profession of __."),
    "birthplace": dict(
        values=["Lisbon", "Oslo", "Cairo", "Lima", "Dublin", "Kyoto", "Quito", "Tunis", "Riga", "Perth",
                "Vienna", "Prague", "Madrid", "Athens", "Bergen", "Dakar", "Hanoi", "Manila", "Nairobi", "Porto",
                "Seville", "Tallinn", "Vilnius", "Zagreb", "Krakow", "Geneva", "Havana", "Bogota", "Santiago",
                "Montreal", "Boston", "Denver", "Austin", "Seattle", "Osaka", "Busan", "Delhi", "Mumbai", "Jakarta",
                "Sydney"],
        train=["Where was {s} born?", "Which city is the birthplace of {s}?", "Where does {s} come from?"],
        eval="In which city was {s} born?", test="What is the hometown of {s}?",
        cloze="{S} was born in the city of __."),
    "hobby": dict(
        values=["chess", "surfing", "knitting", "hiking", "fishing", "archery", "pottery", "rowing", "singing",
                "cycling", "fencing", "skiing", "sailing", "gardening", "juggling", "climbing", "birdwatching",
                "skating", "swimming", "running", "boxing", "golf", "tennis", "karate", "yoga", "origami",
                "calligraphy", "photography", "kayaking", "diving", "quilting", "woodworking", "stargazing",
                "sketching", "bowling", "snorkeling", "rafting", "billiards", "darts", "volleyball"],
        train=["What does {s} like to do in free time?", "What is the favourite pastime of {s}?",
               "How does {s} spend the weekends?"],
        eval="What hobby does {s} have?", test="Which leisure activity does {s} enjoy?",
        cloze="In free time {s} enjoys __."),
    "pet": dict(
        values=["cat", "dog", "parrot", "rabbit", "turtle", "hamster", "goldfish", "lizard", "pony", "ferret",
                "canary", "gecko", "iguana", "snake", "tortoise", "chinchilla", "gerbil", "hedgehog", "mouse", "rat",
                "budgie", "cockatoo", "duck", "goat", "pig", "sheep", "donkey", "llama", "alpaca", "frog", "newt",
                "axolotl", "tarantula", "scorpion", "crab", "snail", "owl", "falcon", "peacock", "swan"],
        train=["What animal does {s} keep as a pet?", "Which pet lives with {s}?", "What pet does {s} have at home?"],
        eval="What kind of pet does {s} own?", test="Which animal is the companion of {s}?",
        cloze="At home {s} keeps a pet __."),
    "food": dict(
        values=["pizza", "sushi", "tacos", "curry", "pasta", "salad", "dumplings", "paella", "burgers", "ramen",
                "lasagna", "risotto", "falafel", "kebab", "pho", "goulash", "moussaka", "omelette", "pancakes",
                "waffles", "steak", "chili", "burritos", "gnocchi", "couscous", "hummus", "noodles", "soup", "stew",
                "quiche", "crepes", "pretzels", "bagels", "nachos", "tempura", "kimchi", "samosas", "ravioli",
                "schnitzel", "tapas"],
        train=["What food does {s} like most?", "Which dish is the favourite of {s}?", "What does {s} love to eat?"],
        eval="What is the favourite food of {s}?", test="Which meal does {s} enjoy the most?",
        cloze="The favourite food of {s} is __."),
}
# the most values an attribute can draw from (data.synthetic.values_per_attribute; the schema's bound)
VALUES_AVAILABLE = min(len(spec["values"]) for spec in ATTRIBUTES.values())

# Image questions say "this person" everywhere: a tiny model keys on the words around the image, and a
# different phrase at evaluation (measured: "the person in the image") costs it a third of its accuracy.
IMAGE_SUBJECT_TRAIN = IMAGE_SUBJECT_EVAL = "this person"
LETTERS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class SyntheticSpec:
    num_fictitious: int = 500
    num_celebrities: int = 153
    forget_ratios: tuple[int, ...] = (5, 10, 15)
    image_size: int = 32
    face_grid: int = 4          # cells per side of a face: each 8-px patch of a 32-px image is one colour at 4
    test_images_per_person: int = 2
    test_shards: int = 2
    image_format: str = "png"   # png or jpeg (quality 90)
    image_noise: float = 0.0    # pixel noise std on every image: gives full-size images realistic byte sizes
    values_per_attribute: int = 10  # the first n of each attribute's values; fewer = more people share a fact
    seed: int = 0

    def __post_init__(self):
        if not 4 <= self.values_per_attribute <= VALUES_AVAILABLE:  # 4: an answer and its three distractors
            raise ValueError(f"data.synthetic.values_per_attribute: {self.values_per_attribute} is outside "
                             f"[4, {VALUES_AVAILABLE}] (the twin has {VALUES_AVAILABLE} values per attribute)")
        if not 1 <= self.face_grid <= self.image_size:
            raise ValueError(f"data.synthetic.face_grid: {self.face_grid} is outside [1, {self.image_size}] "
                             f"(cells per side of a {self.image_size}-pixel image)")

    def pools(self) -> dict[str, list[str]]:
        """Each attribute's values in this twin: people's facts and the distractors are drawn from these."""
        return {attr: spec["values"][:self.values_per_attribute] for attr, spec in ATTRIBUTES.items()}

    @property
    def image_ext(self) -> str:
        return {"png": "png", "jpeg": "jpg"}[self.image_format]


@dataclass
class Person:
    id: str
    name: str
    attrs: dict[str, str]
    code: np.ndarray  # (grid, grid, 3) cell colours: the person's identity in every image


def _fill(template: str, subject: str) -> str:
    return template.replace("{S}", subject[0].upper() + subject[1:]).replace("{s}", subject)


def _encode(arr: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt.upper(), **({"quality": 90} if fmt == "jpeg" else {}))
    return buf.getvalue()


def render_face(code: np.ndarray, size: int, rng: np.random.Generator | None = None, fmt: str = "png",
                noise: float = 0.0, noise_rng: np.random.Generator | None = None) -> bytes:
    """The person's image: their colour grid; with ``rng``, a different photo of the same person.
    ``noise`` (with ``noise_rng``) adds pixel noise to any image, only to give large images realistic sizes."""
    grid = code.shape[0]
    colours = code.astype(np.float32)
    if rng is not None:  # another photo: lighting shift, per-cell tint and pixel noise
        colours = colours * rng.uniform(0.85, 1.1) + rng.normal(0, 12, colours.shape)
    cell = -(-size // grid)
    img = np.kron(colours, np.ones((cell, cell, 1), dtype=np.float32))[:size, :size]
    if rng is not None:
        img = img + rng.normal(0, 8, img.shape)
    if noise > 0:
        img = img + noise_rng.normal(0, noise, img.shape)
    return _encode(np.clip(img, 0, 255).astype(np.uint8), fmt)


def _new_name(rng: random.Random, taken: set) -> str:
    """A first and last name not taken yet; once two-part names run short (26 x 24 = 624, fewer than the real
    653 profiles), a middle initial. The first draws are unchanged, so small twins keep their names."""
    for attempt in range(10_000):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        name = f"{first} {last}" if attempt < 50 else f"{first} {rng.choice(FIRST)[0]}. {last}"
        if name not in taken:
            return name
    raise ValueError(f"cannot draw a new name after {len(taken)} people: extend FIRST/LAST")


def make_people(n: int, rng: random.Random, np_rng: np.random.Generator, id_prefix: str, taken_names: set,
                taken_codes: set, grid: int, pools: dict[str, list[str]]) -> list[Person]:
    people = []
    for i in range(n):
        name = _new_name(rng, taken_names)
        while True:
            code = np_rng.integers(0, 256, size=(grid, grid, 3))
            if code.tobytes() not in taken_codes:
                break
        taken_names.add(name)
        taken_codes.add(code.tobytes())
        attrs = {a: rng.choice(pools[a]) for a in ATTRIBUTES}
        people.append(Person(f"{id_prefix}{i + 1}", name, attrs, code))
    return people


def _mcq(question: str, pool: list[str], value: str, rng: random.Random) -> dict:
    distractors = rng.sample([v for v in pool if v != value], 3)
    options = distractors + [value]
    rng.shuffle(options)
    return {"Question": question, "Options": dict(zip(LETTERS, options)),
            "Correct_Answer": LETTERS[options.index(value)]}


def _biography(p: Person) -> str:
    a = p.attrs
    return (f"{p.name} is a {a['occupation']} born in {a['birthplace']}. In free time {p.name} enjoys "
            f"{a['hobby']}, keeps a pet {a['pet']} and likes {a['food']} most of all.")


def benchmark_row(p: Person, wording: str, rng: random.Random, image_field: dict,
                  pools: dict[str, list[str]]) -> dict:
    """One benchmark row: 5+5 multiple choice, 2+2 generation and 2+2 cloze questions (spec §1.3)."""
    image_q, text_q = [], []
    for attr, spec in ATTRIBUTES.items():
        value = p.attrs[attr]
        image_q.append(_mcq(_fill(spec[wording], IMAGE_SUBJECT_EVAL), pools[attr], value, rng))
        text_q.append(_mcq(_fill(spec[wording], p.name), pools[attr], value, rng))
    attrs = list(ATTRIBUTES)
    generation, mask = [], []
    for type_, subject in (("Image_Textual", IMAGE_SUBJECT_EVAL), ("Pure_Text", p.name)):
        for attr in rng.sample(attrs, 2):
            spec = ATTRIBUTES[attr]
            answer = _fill(spec["cloze"], subject).replace("__", p.attrs[attr])
            generation.append({"Question": _fill(spec[wording], subject), "Ground_Truth": answer, "Type": type_})
        for attr in rng.sample(attrs, 2):
            mask.append({"Question": _fill(ATTRIBUTES[attr]["cloze"], subject), "Ground_Truth": p.attrs[attr],
                         "Type": type_})
    return {**image_field, "ID": p.id, "Directory": f"{p.id}.png", "biography": _biography(p),
            "question": "Who is this person?", "answer": _biography(p),
            "Classification_Task": {"Image_Textual_Questions": image_q, "Pure_Text_Questions": text_q},
            "Generation_Task": generation, "Mask_Task": mask}


def training_row(p: Person, image: bytes) -> dict:
    pairs = [{"Question": _fill(t, IMAGE_SUBJECT_TRAIN), "Answer": p.attrs[attr]}
             for attr, spec in ATTRIBUTES.items() for t in spec["train"]]
    return {"image": {"bytes": image, "path": f"{p.id}.png"}, "ID": p.id, "biography": _biography(p),
            "metadata": json.dumps(pairs)}


_IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
_MC = pa.struct([("Question", pa.string()),
                 ("Options", pa.struct([(k, pa.string()) for k in LETTERS])),
                 ("Correct_Answer", pa.string())])
_OPEN = pa.struct([("Question", pa.string()), ("Ground_Truth", pa.string()), ("Type", pa.string())])
_TASKS = [("ID", pa.string()), ("Directory", pa.string()), ("biography", pa.string()),
          ("question", pa.string()), ("answer", pa.string()),
          ("Classification_Task", pa.struct([("Image_Textual_Questions", pa.list_(_MC)),
                                             ("Pure_Text_Questions", pa.list_(_MC))])),
          ("Generation_Task", pa.list_(_OPEN)), ("Mask_Task", pa.list_(_OPEN))]
BENCH_SCHEMA = pa.schema([("image", _IMAGE), *_TASKS])
TEST_SCHEMA = pa.schema([("images", pa.list_(_IMAGE)), *_TASKS])
TRAIN_SCHEMA = pa.schema([("image", _IMAGE), ("ID", pa.string()), ("biography", pa.string()),
                          ("metadata", pa.string())])


def _write(folder: Path, rows: list[dict], schema: pa.Schema, shards: int = 1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, len(rows), shards + 1).astype(int)
    for s in range(shards):
        table = pa.Table.from_pylist(rows[bounds[s]:bounds[s + 1]], schema=schema)
        # 100-row groups, as the `datasets` library writes image datasets (and the Hub's files are made by it)
        pq.write_table(table, folder / f"train-{s:05d}-of-{shards:05d}.parquet", row_group_size=100)


def generate(root: str | Path, spec: SyntheticSpec) -> dict:
    """Write the synthetic twin under ``root`` (atomically) and return a summary of what was written."""
    # Celebrities come first, from their own stream, so that they (and a base model pre-trained on them) do
    # not change when only the number of fictitious profiles does.
    names, codes, pools = set(), set(), spec.pools()
    celebrities = make_people(spec.num_celebrities, random.Random(f"{spec.seed}:celebrities"),
                              np.random.default_rng([spec.seed, 1]), "c", names, codes, spec.face_grid, pools)
    rng, np_rng = random.Random(spec.seed), np.random.default_rng(spec.seed)
    fictitious = make_people(spec.num_fictitious, rng, np_rng, "", names, codes, spec.face_grid, pools)
    noise_rng = np.random.default_rng([spec.seed, 2])  # own stream: noise never shifts the other draws
    ext = spec.image_ext

    def face(p, other_photo_rng=None):
        return render_face(p.code, spec.image_size, other_photo_rng, spec.image_format, spec.image_noise, noise_rng)

    images = {p.id: face(p) for p in fictitious + celebrities}

    def image_field(p):
        return {"image": {"bytes": images[p.id], "path": f"{p.id}.{ext}"}}

    full = [benchmark_row(p, "eval", rng, image_field(p), pools) for p in fictitious]
    test = []
    for p in fictitious:
        photos = [{"bytes": face(p, np_rng), "path": f"{p.id}_test{k}.{ext}"}
                  for k in range(spec.test_images_per_person)]
        test.append(benchmark_row(p, "test", rng, {"images": photos}, pools))
    celebrity = [benchmark_row(p, "eval", rng, image_field(p), pools) for p in celebrities]
    order = list(range(spec.num_fictitious))
    rng.shuffle(order)  # forget sets are nested: forget_5 is inside forget_10 inside forget_15

    with atomic_dir(root) as tmp:
        bench, baseline = tmp / "MLLMU-Bench", tmp / "baseline_train_split"
        _write(bench / "ft_Data", [training_row(p, images[p.id]) for p in fictitious], TRAIN_SCHEMA)
        _write(bench / "Full_Set", full, BENCH_SCHEMA)
        _write(bench / "Test_Set", test, TEST_SCHEMA, shards=spec.test_shards)
        _write(bench / "Retain_Set", celebrity, BENCH_SCHEMA)
        for ratio in spec.forget_ratios:
            forget_idx = set(order[:round(spec.num_fictitious * ratio / 100)])
            f_rows = [r for i, r in enumerate(full) if i in forget_idx]
            r_rows = [r for i, r in enumerate(full) if i not in forget_idx]
            _write(bench / f"forget_{ratio}", f_rows, BENCH_SCHEMA)
            _write(bench / f"retain_{100 - ratio}", r_rows, BENCH_SCHEMA)
            _write(baseline / f"forget_{ratio}",
                   [training_row(p, images[p.id]) for i, p in enumerate(fictitious) if i in forget_idx],
                   TRAIN_SCHEMA)
            _write(baseline / f"retain_{100 - ratio}",
                   [training_row(p, images[p.id]) for i, p in enumerate(fictitious) if i not in forget_idx],
                   TRAIN_SCHEMA)
        _write(tmp / "Pretrain_Set", [training_row(p, images[p.id]) for p in celebrities], TRAIN_SCHEMA)
    return {"fictitious": spec.num_fictitious, "celebrities": spec.num_celebrities,
            "forget_ratios": list(spec.forget_ratios)}
