"""The toy corpus: simple English stories written by a seeded generator (no downloads).

Each story has a hero, a friend, places and things, a plot picked from a few kinds (a lost thing,
sharing food, making something, being brave, a trip to the market, a storm, helping a neighbour),
dialogue in quotes and counts that add up ("She gave two apples to Ben. Now she had one apple left.").
About half of the stories begin "In a small village,". Stories are joined by END_OF_TEXT, as in GPT-2.

    stories = generate_corpus(n_stories=540, seed=0)   # same seed -> same stories
    text = corpus_text(n_stories=540, seed=0)          # one string, END_OF_TEXT after every story
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import NamedTuple

END_OF_TEXT = "<|endoftext|>"

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")

GIRL_NAMES = (
    "Anna",
    "Lily",
    "Mia",
    "Rosa",
    "Nora",
    "Ella",
    "Ivy",
    "Lucy",
    "Zoe",
    "Maya",
    "Clara",
    "Ruby",
    "Grace",
    "Alice",
    "Hannah",
    "Sara",
    "Emma",
    "Tilly",
)
BOY_NAMES = (
    "Ben",
    "Tom",
    "Sam",
    "Leo",
    "Finn",
    "Max",
    "Jack",
    "Omar",
    "Theo",
    "Hugo",
    "Eli",
    "Oscar",
    "Noah",
    "Felix",
    "Kai",
    "Leon",
    "Peter",
    "Luca",
)
ANIMAL_NAMES = ("Pip", "Bramble", "Whiskers", "Dot", "Pepper", "Clover", "Biscuit", "Button", "Hazel", "Moss", "Nutmeg", "Puddle")

PEOPLE = ("girl", "boy", "farmer", "baker", "painter", "fisher", "shepherd", "teacher", "potter", "weaver", "gardener", "miller")
ANIMALS = (
    "fox",
    "rabbit",
    "cat",
    "dog",
    "mouse",
    "duck",
    "owl",
    "bear",
    "goat",
    "hedgehog",
    "squirrel",
    "frog",
    "pig",
    "lamb",
    "turtle",
    "hen",
)
ADJECTIVES = (
    "little",
    "kind",
    "brave",
    "shy",
    "curious",
    "happy",
    "clever",
    "quiet",
    "busy",
    "gentle",
    "tiny",
    "funny",
    "cheerful",
    "sleepy",
    "proud",
    "young",
    "careful",
    "friendly",
)
COLORS = ("red", "blue", "green", "yellow", "white", "brown", "orange", "purple", "pink", "golden", "silver", "gray")
OBJECTS = (
    "ball",
    "kite",
    "key",
    "hat",
    "basket",
    "book",
    "lamp",
    "drum",
    "box",
    "bell",
    "map",
    "shoe",
    "cup",
    "ring",
    "blanket",
    "feather",
    "shell",
    "ribbon",
    "coin",
    "letter",
    "umbrella",
    "bucket",
    "whistle",
    "scarf",
    "spoon",
    "marble",
    "sock",
    "crayon",
)
PLACES = (
    "forest",
    "river",
    "hill",
    "garden",
    "lake",
    "meadow",
    "bridge",
    "mill",
    "beach",
    "cave",
    "orchard",
    "well",
    "pond",
    "field",
    "harbor",
    "barn",
    "school",
    "library",
    "square",
    "park",
)
HIDING_SPOTS = (
    "under a big rock",
    "behind an old tree",
    "in a tall bush",
    "next to the fence",
    "under a pile of leaves",
    "beside a wooden bench",
    "in the soft grass",
    "on a low branch",
)
TIMES = ("sunny", "rainy", "cold", "warm", "windy", "quiet", "foggy", "bright")
PARTS_OF_DAY = ("morning", "afternoon", "evening")
HOBBIES = (
    "to sing songs",
    "to read books",
    "to climb trees",
    "to draw pictures",
    "to bake bread",
    "to count the stars",
    "to play by the river",
    "to collect shells",
    "to help others",
    "to tell jokes",
    "to pick flowers",
    "to run in the rain",
)
RELATIVES = ("grandmother", "grandfather", "mother", "father", "aunt", "uncle")
FOODS = (
    ("apple", "apples"),
    ("pear", "pears"),
    ("plum", "plums"),
    ("egg", "eggs"),
    ("carrot", "carrots"),
    ("cookie", "cookies"),
    ("cake", "cakes"),
    ("fish", "fish"),
    ("nut", "nuts"),
    ("strawberry", "strawberries"),
    ("potato", "potatoes"),
    ("muffin", "muffins"),
    ("peach", "peaches"),
    ("cherry", "cherries"),
    ("loaf of bread", "loaves of bread"),
)
CRAFTS = (
    # (thing, materials, what went wrong the first time, what it did when it worked)
    ("kite", ("paper", "string", "two sticks"), "heavy", "flew high above the hill"),
    ("boat", ("wood", "cloth", "some nails"), "small", "floated on the pond"),
    ("birdhouse", ("wood", "nails", "paint"), "crooked", "hung from the apple tree, and a bird moved in"),
    ("hat", ("cloth", "thread", "a feather"), "big", "kept the sun off all summer"),
    ("drum", ("leather", "string", "a round box"), "quiet", "made a loud and happy sound"),
    ("sandcastle", ("sand", "water", "shells"), "wet", "stood tall with four towers"),
    ("snowman", ("snow", "pebbles", "a carrot"), "small", "smiled at everyone who walked by"),
)
FEARS = (
    # (what the hero is afraid of, what being brave looks like)
    ("the dark", "walked into the dark barn with a small lamp"),
    ("deep water", "stepped onto the little boat and held on tight"),
    ("thunder", "counted slowly until the thunder was far away"),
    ("the big dog next door", "said hello to the big dog, and the dog wagged its tail"),
    ("high places", "climbed the ladder one step at a time"),
    ("the old bridge", "walked across the old bridge without looking down"),
)
MORALS = (
    "it is good to share",
    "friends help each other",
    "being brave does not mean you are never afraid",
    "trying again is how we learn",
    "a kind word can make a big difference",
    "small things can bring great joy",
    "it is better to work together",
)
SAID = ("said", "asked", "shouted", "whispered", "called", "replied")
HAPPY_ACTIONS = (
    "jumped up and down",
    "sang a little song",
    "gave {friend} a big hug",
    "danced around the {place}",
    "laughed and clapped",
    "smiled from ear to ear",
)
CHORES = (
    # (the problem, how they fixed it)
    ("fence had fallen down", "lifted the boards and tied them with rope"),
    ("garden was full of weeds", "pulled the weeds one by one"),
    ("roof had a hole in it", "covered the hole with a new board"),
    ("cat was stuck in a tree", "brought a ladder and carried the cat down"),
    ("well bucket had broken", "made a new bucket from an old barrel"),
    ("path was covered in snow", "cleared the path with two shovels"),
)


class Character(NamedTuple):
    name: str
    noun: str  # "girl", "farmer", "fox"
    adjective: str
    female: bool

    @property
    def he(self) -> str:
        return "she" if self.female else "he"

    @property
    def him(self) -> str:
        return "her" if self.female else "him"

    @property
    def his(self) -> str:
        return "her" if self.female else "his"


def count(n: int, noun: tuple[str, str]) -> str:  # 3, ("apple", "apples") -> "three apples"
    return f"{NUMBER_WORDS[n]} {noun[0] if n == 1 else noun[1]}"


def article(phrase: str) -> str:  # "old owl" -> "an old owl"
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def pick_character(rng: random.Random, avoid: str = "") -> Character:
    """A person or an animal with a name other than `avoid`."""
    female = rng.random() < 0.5
    if rng.random() < 0.35:
        noun = rng.choice(ANIMALS)
        names = ANIMAL_NAMES
    else:
        noun = rng.choice(PEOPLE)
        if noun in ("girl", "boy"):
            female = noun == "girl"
        names = GIRL_NAMES if female else BOY_NAMES
    name = rng.choice([n for n in names if n != avoid])
    return Character(name, noun, rng.choice(ADJECTIVES), female)


def describe(c: Character, rng: random.Random) -> str:  # "Pip, a little fox" / "a kind farmer named Ben"
    if rng.random() < 0.5:
        return f"{c.name}, {article(c.adjective + ' ' + c.noun)}"
    return f"{article(c.adjective + ' ' + c.noun)} named {c.name}"


def slots_for(hero: Character, friend: Character, rng: random.Random) -> dict[str, str]:
    """The words every template may use: hero and friend pronouns, a place, a thing, a colour."""
    place, place2 = rng.sample(PLACES, 2)
    return {
        "hero": hero.name,
        "he": hero.he,
        "him": hero.him,
        "his": hero.his,
        "He": hero.he.capitalize(),
        "His": hero.his.capitalize(),
        "hero_desc": describe(hero, rng),
        "noun": hero.noun,
        "adj": hero.adjective,
        "friend": friend.name,
        "fhe": friend.he,
        "fhim": friend.him,
        "fhis": friend.his,
        "friend_desc": describe(friend, rng),
        "place": place,
        "place2": place2,
        "object": rng.choice(OBJECTS),
        "color": rng.choice(COLORS),
        "time": rng.choice(TIMES),
        "part": rng.choice(PARTS_OF_DAY),
        "hobby": rng.choice(HOBBIES),
        "relative": rng.choice(RELATIVES),
        "spot": rng.choice(HIDING_SPOTS),
        "said": rng.choice(SAID[:1] * 3 + SAID),
        "moral": rng.choice(MORALS),
    }


def opening(s: dict[str, str], rng: random.Random) -> list[str]:
    village = [
        "In a small village, there lived {a_adj_noun} named {hero}.",
        "In a small village, near the {place}, lived {hero_desc}.",
        "In a small village by the {place}, there was {a_adj_noun} called {hero}.",
        "In a small village, everyone knew {hero}, {a_adj_noun}.",
    ]
    other = [
        "Once upon a time, there was {a_adj_noun} named {hero}.",
        "Long ago, near a quiet {place}, lived {hero_desc}.",
        "There was once {a_adj_noun} called {hero} who lived by the {place}.",
        "In a big green valley, there lived {hero_desc}.",
        "One {time} {part}, {hero} the {noun} woke up early.",
    ]
    first = rng.choice(village if rng.random() < 0.55 else other)
    second = rng.choice(
        [
            "{He} loved {hobby}.",
            "Every day, {hero} liked {hobby}.",
            "{His} favorite thing in the world was {his} {color} {object}.",
            "{He} lived in a small house with {his} {relative}.",
            "{He} had a {color} door and a garden full of flowers.",
        ]
    )
    third = rng.choice(
        [
            "",
            "The sky was blue, and the birds were singing.",
            "Outside, the wind moved the leaves of the trees.",
            "The air smelled of fresh bread and warm grass.",
            "It was {a_time} day in the village.",
        ]
    )
    return [first, second, third] if third else [first, second]


def plot_lost_thing(s: dict[str, str], rng: random.Random) -> list[str]:
    return [
        rng.choice(["One {time} {part}, {hero} could not find {his} {color} {object}.", "One day, {hero} lost {his} {color} {object}."]),
        rng.choice(['"Where is my {object}?" {he} asked.', '"Oh no! My {object} is gone!" cried {hero}.']),
        rng.choice(
            [
                "{He} looked under the bed. {He} looked behind the door. {He} looked in the {place}, but the {object} was not there.",
                "{He} ran to the {place} and looked everywhere, but {he} could not find it.",
            ]
        ),
        rng.choice(["Then {hero} met {friend_desc}.", "On the way, {hero} met {friend_desc}.", "Soon {friend} came by."]),
        rng.choice(['"I saw {a_color_object} near the {place2}," {said} {friend}.', '"Do not worry. I will help you," {said} {friend}.']),
        "Together they walked to the {place2}. There, {spot}, was the {color} {object}!",
        '"Thank you, {friend}!" said {hero}. {He} was so happy that {he} {happy}.',
    ]


def plot_sharing(s: dict[str, str], rng: random.Random) -> list[str]:
    food = rng.choice(FOODS)
    have = rng.randint(3, 9)
    give = rng.randint(1, have - 1)
    s.update(food=food[0], foods=food[1], have=count(have, food), give=count(give, food), left=count(have - give, food))
    beats = [
        rng.choice(
            ["One {time} {part}, {hero} went to the {place} and found {have}.", "{Hero_s} {relative} gave {him} {have} in a basket."]
        ),
        "On the way home, {he} met {friend_desc}. {Friend} looked hungry.",
        '"Would you like some {foods}?" asked {hero}. "Yes, please!" said {friend}.',
        "{hero} gave {give} to {friend}. Now {he} had {left} left.",
    ]
    if have - give >= 2:
        s.update(last=count(have - give - 1, food))
        beats.append("Later, a hungry bird sat on the fence, so {hero} gave it one more. Now {he} had {last}.")
    beats.append(
        rng.choice(
            [
                "{hero} did not mind. Sharing made {him} feel warm inside.",
                "That evening, {hero} and {friend} sat by the {place2} and ate together.",
            ]
        )
    )
    return beats


def plot_making(s: dict[str, str], rng: random.Random) -> list[str]:
    thing, materials, flaw, success = rng.choice(CRAFTS)
    s.update(thing=thing, m1=materials[0], m2=materials[1], m3=materials[2], flaw=flaw, success=success)
    return [
        rng.choice(["One {time} day, {hero} wanted to make a {thing}.", "{hero} had a plan. {He} wanted to make a {thing}."]),
        "{He} needed {m1}, {m2} and {m3}.",
        "{He} found the {m1} near the {place}, and {friend} gave {him} the {m2}.",
        rng.choice(
            ["But the first {thing} was too {flaw}. {hero} felt sad.", "The first {thing} was too {flaw}, and {hero} almost gave up."]
        ),
        '"Try again," {said} {friend}. "You can do it."',
        "So {hero} tried again. This time, the {thing} {success}.",
        rng.choice(['"We did it!" said {hero}.', '"It is perfect!" said {friend}.']),
    ]


def plot_brave(s: dict[str, str], rng: random.Random) -> list[str]:
    fear, brave = rng.choice(FEARS)
    s.update(fear=fear, brave=brave)
    return [
        "{hero} was afraid of {fear}.",
        'One {part}, {friend} came running. "My {object} is lost near the {place}!" {fhe} cried.',
        '"I am scared," said {hero}. "I will be right next to you," said {friend}.',
        "{hero} took a deep breath and {brave}.",
        "Soon they found the {color} {object} {spot}.",
        rng.choice(["It was not so scary after all.", "{hero} felt proud of {him}self."]),
    ]


def plot_market(s: dict[str, str], rng: random.Random) -> list[str]:
    food = rng.choice(FOODS)
    coins = rng.randint(4, 10)
    price = rng.randint(1, 2)
    buy = rng.randint(1, coins // price - 1)
    left = coins - buy * price
    coin = ("coin", "coins")
    s.update(
        foods=food[1],
        coins=count(coins, coin),
        price=count(price, coin),
        buy=count(buy, food),
        paid=count(buy * price, coin),
        coins_left=count(left, coin),
    )
    return [
        "{hero} had {coins} in {his} pocket.",
        "{He} walked to the market in the village square.",
        "A {adj2} baker was selling {foods}. Each one cost {price}.",
        '"I would like {buy}, please," said {hero}.',
        "{hero} paid {paid}. Now {he} had {coins_left}.",
        rng.choice(
            ["With the last coins, {he} bought {a_color_object} for {friend}.", "{He} put the rest in a jar to save for the summer fair."]
        ),
        rng.choice(["{friend} was very happy.", "On the way home, {he} shared the {foods} with {friend}."]),
    ]


def plot_storm(s: dict[str, str], rng: random.Random) -> list[str]:
    s.update(animal=rng.choice(ANIMALS), food=rng.choice(FOODS)[1])
    return [
        "One {part}, dark clouds came over the {place}.",
        "The wind was strong, and the rain began to fall.",
        "{hero} heard a small sound. {spot_cap}, {he} found a tiny {animal}. It was wet and cold.",
        '"Poor little {animal}," {said} {hero}. "Come with me."',
        "{He} carried the {animal} home and gave it some {food} and a warm blanket.",
        "The next morning, the sun was shining. The {animal} was strong again, and it ran back to the {place}.",
        "Every day after that, the little {animal} came to visit {hero}.",
    ]


def plot_neighbour(s: dict[str, str], rng: random.Random) -> list[str]:
    problem, fix = rng.choice(CHORES)
    reward = rng.choice(FOODS)
    s.update(problem=problem, fix=fix, reward=count(rng.randint(2, 6), reward))
    return [
        "{hero} had an old neighbor called {friend}.",
        "One {time} {part}, {friend}'s {problem}.",
        rng.choice(['"I am too tired to fix it," {friend} said sadly.', '"What shall I do?" {friend} asked.']),
        '"I will help you," said {hero}.',
        "So {hero} and {his} {relative} {fix}. It took all {part}.",
        "When they were done, {friend} gave them {reward} to say thank you.",
    ]


PLOTS: tuple[Callable[[dict[str, str], random.Random], list[str]], ...] = (
    plot_lost_thing,
    plot_sharing,
    plot_making,
    plot_brave,
    plot_market,
    plot_storm,
    plot_neighbour,
)


def ending(s: dict[str, str], rng: random.Random) -> list[str]:
    return [
        rng.choice(
            [
                "From that day on, {hero} and {friend} were the best of friends.",
                "That night, {hero} went to sleep with a big smile.",
                "{hero} learned that {moral}.",
                "And that is how {hero} learned that {moral}.",
                "It was the best day {hero} could remember.",
                "The end.",
                "{hero} and {friend} still laugh about that day.",
                "And the {place} was never quite the same again.",
            ]
        )
    ]


def tell_story(rng: random.Random) -> str:
    """One story: an opening paragraph, a plot paragraph, an ending line."""
    hero = pick_character(rng)
    friend = pick_character(rng, avoid=hero.name)
    s = slots_for(hero, friend, rng)
    s.update(
        a_adj_noun=article(f"{hero.adjective} {hero.noun}"),
        a_color_object=article(f"{s['color']} {s['object']}"),
        Hero_s=f"{hero.name}'s",
        a_time=article(s["time"]),
        Friend=friend.name,
        adj2=rng.choice(ADJECTIVES),
        spot_cap=s["spot"].capitalize(),
        happy=rng.choice(HAPPY_ACTIONS).format(friend=friend.name, place=s["place"]),
    )
    paragraphs = [opening(s, rng), rng.choice(PLOTS)(s, rng), ending(s, rng)]
    return "\n".join(" ".join(line.format(**s) for line in lines) for lines in paragraphs)


def generate_corpus(n_stories: int = 540, seed: int = 0) -> list[str]:
    """`n_stories` stories from a generator seeded with `seed` (same seed, same stories)."""
    rng = random.Random(seed)
    return [tell_story(rng) for _ in range(n_stories)]


def join_stories(stories: list[str]) -> str:
    """One string with END_OF_TEXT after every story (GPT-2's document separator)."""
    return "".join(f"{story}{END_OF_TEXT}" for story in stories)


def corpus_text(n_stories: int = 540, seed: int = 0) -> str:
    """The corpus as one string, every story followed by END_OF_TEXT."""
    return join_stories(generate_corpus(n_stories, seed))
