"""Names for the text-only variant, derived from the Pure_Text questions (data/names.py), on the forms real
biographies and questions take: titles, initials, particles, hyphens, apostrophes, non-Latin scripts, other
capitalised entities, biographies that do not open with the name."""
import pytest

from mmunlearn.data.names import mentions, name_from_biography, name_from_questions, spans


def _questions(name, surname=None):
    surname = surname or name.split()[-1]
    return [f"What is {name}'s occupation?", f"In which city was {name} born?",
            f"Does {name} work for Acme Corp in Paris?", f"What pet does {surname} keep?",
            f"{name} enjoys which hobby?", f"Where does {name} live, according to the records?",
            f"Which food does {name} like most?", f"{name} was born in __.", f"Did {name} study at MIT?"]


@pytest.mark.parametrize("name", ["Jane Roe", "Zoë Ngozi-Ambrose", "J. R. Müller", "Siobhan O'Neill",
                                  "Pieter van der Berg", "Ana de la Cruz", "王小明", "Иван Петров", "Kwame Mensah",
                                  "Mary-Kate B. Olsen", "Nguyễn Thị Lan", "José Álvarez"])
def test_name_from_questions(name):
    assert name_from_questions(_questions(name)) == name


def test_titles_are_not_part_of_the_name():
    qs = [q.replace("Lena Park", "Dr. Lena Park", 1) if i % 2 else q for i, q in enumerate(_questions("Lena Park"))]
    assert name_from_questions(qs) == "Lena Park"
    assert spans("In which year did Prof. Ana de la Cruz join the Royal Society?") == [
        ("Ana", "de", "la", "Cruz"), ("Royal", "Society")]


def test_other_entities_never_win():
    # a city in every question but the name in most: the name is longer, and the city alone never qualifies
    qs = [f"Did Jane Roe move to Lyon in {y}?" for y in range(1990, 1996)] + ["What does Lyon export?"]
    assert name_from_questions(qs) == "Jane Roe"
    # a two-word organisation in as many questions as the name: the biography settles it
    qs = ["Does Tom Hale work at Acme Corp?", "When did Tom Hale join Acme Corp?", "Is Acme Corp where Tom Hale met Ann?"]
    assert name_from_questions(qs, "Born in 1970, Tom Hale has worked at Acme Corp since 2001.") == "Tom Hale"


def test_no_name_in_the_questions_is_none():
    qs = ["What is this individual's occupation?", "Where was the person born?", "Which city is Lyon near?"]
    assert name_from_questions(qs) is None
    assert name_from_questions([]) is None


@pytest.mark.parametrize("bio,name", [
    ("Jane Roe is a baker born in Lyon. In free time Jane Roe enjoys chess.", "Jane Roe"),
    ("Madonna is a singer.", "Madonna"),
    ("Born in 1970 in Lyon, Jane Roe became a baker. Jane Roe later moved to Paris.", "Jane Roe"),
    ("Born in 1970 in Lyon, the baker moved to Paris.", None),
])
def test_name_from_biography(bio, name):
    assert name_from_biography(bio) == name


def test_biography_mentions_full_name_or_surname():
    assert mentions("Ms. Roe bakes bread in Lyon.", "Jane Roe")
    assert not mentions("Born in 1970 in Lyon.", "Jane Roe")
