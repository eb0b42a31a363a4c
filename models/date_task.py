"""A synthetic translation task with a readable alignment: written dates -> ISO dates.

"twenty-sixth of november 2026" -> "2026-11-26". The source is written in many formats (ordinal words,
digits with or without a suffix, full or abbreviated month names, an optional weekday), so that the
cross-attention of a trained model has to find the year, then the month, then the day, wherever they are:
its target x source map is an alignment a reader can check by eye.

Both sides are character-level. `validate` says what a model trained on this task can take.
"""

import datetime as dt
import random
import re
from dataclasses import dataclass

import torch

YEARS = (1900, 2099)  # inclusive range of the years the generator writes
MAX_SRC_LEN = 48  # characters; the longest generated input has 45

MONTHS = [
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
]  # fmt: skip
MONTH_ABBREVIATIONS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

_UNITS = ["", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth"]
_TEENS = {
    10: "tenth", 11: "eleventh", 12: "twelfth", 13: "thirteenth", 14: "fourteenth", 15: "fifteenth",
    16: "sixteenth", 17: "seventeenth", 18: "eighteenth", 19: "nineteenth",
}  # fmt: skip


def ordinal_words(day: int) -> str:
    """1 -> 'first', 26 -> 'twenty-sixth', 30 -> 'thirtieth'."""
    if not 1 <= day <= 31:
        raise ValueError(f"day must be in 1..31, got {day}")
    if day < 10:
        return _UNITS[day]
    if day < 20:
        return _TEENS[day]
    tens, unit = divmod(day, 10)
    stem = {2: "twent", 3: "thirt"}[tens]
    return f"{stem}ieth" if unit == 0 else f"{stem}y-{_UNITS[unit]}"


def ordinal_suffix(day: int) -> str:
    """26 -> 'th', 1 -> 'st', 22 -> 'nd', 13 -> 'th'."""
    if day in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


class CharVocab:
    """Special tokens first (ids 0..), then one id per character of `alphabet`."""

    def __init__(self, alphabet: str, specials: tuple[str, ...]):
        self.alphabet = alphabet
        self.specials = specials
        self.tokens = list(specials) + list(alphabet)
        self.index = {tok: i for i, tok in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        return [self.index[c] for c in text]

    def decode(self, ids, stop_at: str | None = None) -> str:
        """Characters of `ids`, skipping specials; stops before the first `stop_at` token if given."""
        out = []
        for i in ids:
            tok = self.tokens[int(i)]
            if tok == stop_at:
                break
            if tok not in self.specials:
                out.append(tok)
        return "".join(out)


PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SRC_ALPHABET = " ,-.0123456789abcdefghijklmnopqrstuvwxyz"
TGT_ALPHABET = "-0123456789"
SRC_VOCAB = CharVocab(SRC_ALPHABET, (PAD,))
TGT_VOCAB = CharVocab(TGT_ALPHABET, (PAD, BOS, EOS))
TGT_LEN = len("2026-11-26")


def iso(date: dt.date) -> str:
    return date.isoformat()  # YYYY-MM-DD for years 1000..9999


def write_date(date: dt.date, rng: random.Random) -> str:
    """One written form of `date`, in a format drawn from `rng` (lower case)."""
    month = MONTHS[date.month - 1]
    if rng.random() < 0.35:
        month = MONTH_ABBREVIATIONS[date.month - 1]
        if date.month == 9 and rng.random() < 0.5:
            month = "sept"
        if month != MONTHS[date.month - 1] and rng.random() < 0.3:
            month += "."
    d, y = date.day, date.year
    fmt = rng.randrange(7)
    if fmt == 0:
        text = f"{ordinal_words(d)} of {month} {y}"
    elif fmt == 1:
        text = f"the {ordinal_words(d)} of {month} {y}"
    elif fmt == 2:
        text = f"{d} {month} {y}"
    elif fmt == 3:
        text = f"{month} {d}{ordinal_suffix(d)}, {y}"
    elif fmt == 4:
        text = f"{month} {d}, {y}"
    elif fmt == 5:
        text = f"the {d}{ordinal_suffix(d)} of {month} {y}"
    else:
        text = f"{month} the {ordinal_words(d)}, {y}"
    if rng.random() < 0.3:
        weekday = WEEKDAYS[date.weekday()]
        if rng.random() < 0.4:
            weekday = weekday[:3]
        text = f"{weekday}{rng.choice([', ', ' '])}{text}"
    return text


def is_held_out(date: dt.date) -> bool:
    """About 5% of all dates, spread evenly, that training never sees in any format."""
    return (date.toordinal() * 2654435761) % 100 < 5


_FIRST = dt.date(YEARS[0], 1, 1).toordinal()
_LAST = dt.date(YEARS[1], 12, 31).toordinal()


def random_date(rng: random.Random, held_out: bool) -> dt.date:
    """A uniform date in YEARS from the held-out split (held_out=True) or the training split."""
    while True:
        date = dt.date.fromordinal(rng.randint(_FIRST, _LAST))
        if is_held_out(date) == held_out:
            return date


def make_pairs(n: int, seed: int, held_out: bool) -> list[tuple[str, str]]:
    """n (written, ISO) pairs, reproducible from `seed`."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        date = random_date(rng, held_out)
        pairs.append((write_date(date, rng), iso(date)))
    return pairs


def normalise(text: str) -> str:
    """Lower case, surrounding spaces removed, runs of white space collapsed to one space."""
    return re.sub(r"\s+", " ", text).strip().lower()


@dataclass
class Validation:
    text: str  # the normalised input the model will read
    error: str | None  # why the model cannot take the input; None if it can

    @property
    def ok(self) -> bool:
        return self.error is None


ACCEPTS = (
    f"a date written in English with letters, digits, spaces and the signs , - . "
    f"(at most {MAX_SRC_LEN} characters), e.g. 'twenty-sixth of November 2026', '26 November 2026', "
    f"'November 26th, 2026', 'the 26th of Nov 2026' or 'Thursday, 26 Nov 2026', with a year from "
    f"{YEARS[0]} to {YEARS[1]}"
)


def validate(text: str, max_len: int = MAX_SRC_LEN) -> Validation:
    """Whether the model can read `text` (after `normalise`), and if not, a message saying what it accepts."""
    if not isinstance(text, str):
        return Validation("", f"Expected text, got {type(text).__name__}. The model accepts {ACCEPTS}.")
    clean = normalise(text)
    if not clean:
        return Validation(clean, f"The input is empty. The model accepts {ACCEPTS}.")
    unknown = sorted({c for c in clean if c not in SRC_ALPHABET})
    if unknown:
        shown = " ".join(repr(c) for c in unknown[:10])
        return Validation(clean, f"Characters the model does not know: {shown}. The model accepts {ACCEPTS}.")
    if len(clean) > max_len:
        return Validation(
            clean, f"The input has {len(clean)} characters, more than the {max_len} the model reads. "
            f"The model accepts {ACCEPTS}.",
        )  # fmt: skip
    return Validation(clean, None)


_DAY_WORDS = {ordinal_words(d): d for d in range(1, 32)}
_MONTH_WORDS = {m: i + 1 for i, m in enumerate(MONTHS)}
_MONTH_WORDS.update({m: i + 1 for i, m in enumerate(MONTH_ABBREVIATIONS)}, sept=9)
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?|\d+(?:st|nd|rd|th)?")


@dataclass
class DateFields:
    """The fields a written date names, and where each one is written."""

    year: int
    month: int
    day: int
    spans: dict[str, tuple[int, int]]  # "year"/"month"/"day" -> [start, end) in the normalised text


def read_fields(text: str) -> DateFields | None:
    """Day, month and year of a written date by rule, with their character spans; None if unclear."""
    values, spans = {}, {}
    for match in _WORD.finditer(normalise(text)):
        word = match.group()
        field, value = None, None
        if word in _MONTH_WORDS:
            field, value = "month", _MONTH_WORDS[word]
        elif word in _DAY_WORDS:
            field, value = "day", _DAY_WORDS[word]
        elif word[0].isdigit():
            digits = word.rstrip("stndrh")
            suffix = word[len(digits) :]
            if len(digits) == 4 and not suffix:
                field, value = "year", int(digits)
            elif len(digits) <= 2 and suffix in ("", ordinal_suffix(int(digits) or 4)):
                field, value = "day", int(digits)
            else:
                return None
        if field is None:
            continue
        if field in values:
            return None  # two days, months or years: no single reading
        values[field], spans[field] = value, match.span()
    if len(values) < 3:
        return None
    return DateFields(**values, spans=spans)


def parse_date(text: str) -> dt.date | None:
    """The date a written input names, by rule (the reference answer), or None if it names none clearly."""
    fields = read_fields(text)
    if fields is None:
        return None
    try:
        return dt.date(fields.year, fields.month, fields.day)
    except ValueError:
        return None


TARGET_FIELDS = {"year": (0, 4), "month": (5, 7), "day": (8, 10)}  # character spans of YYYY-MM-DD


def field_attention(cross, spans: dict[str, tuple[int, int]]) -> dict:
    """Share of each output field's cross-attention that lands on the same field of the source.

    cross (..., Tt, Ts) attention probabilities of a decoding (rows = output characters, EOS step last);
    spans from `read_fields`. Returns field -> (...) mean over the field's output characters of the
    attention mass inside its source span: 1 means the heads read the year digits from the written year.
    """
    shares = {}
    for field, (t0, t1) in TARGET_FIELDS.items():
        s0, s1 = spans[field]
        shares[field] = cross[..., t0:t1, s0:s1].sum(-1).mean(-1)
    return shares


def encode_sources(texts: list[str], device=None) -> torch.Tensor:
    """(B, Ts) source ids, right-padded with PAD to the longest text."""
    width = max(len(text) for text in texts)
    pad = SRC_VOCAB.index[PAD]
    rows = [SRC_VOCAB.encode(text) + [pad] * (width - len(text)) for text in texts]
    return torch.tensor(rows, dtype=torch.long, device=device)


def encode_pairs(pairs: list[tuple[str, str]], device=None):
    """Batch tensors for teacher forcing.

    Returns src (B, Ts) source ids right-padded with PAD, tgt_in (B, 11) = BOS + ISO, and
    tgt_out (B, 11) = ISO + EOS, the tokens each decoder position must predict.
    """
    tgt = [TGT_VOCAB.encode(answer) for _, answer in pairs]
    bos, eos = TGT_VOCAB.index[BOS], TGT_VOCAB.index[EOS]
    tgt_in = torch.tensor([[bos] + t for t in tgt], dtype=torch.long, device=device)
    tgt_out = torch.tensor([t + [eos] for t in tgt], dtype=torch.long, device=device)
    return encode_sources([text for text, _ in pairs], device), tgt_in, tgt_out
