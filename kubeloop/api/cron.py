"""Cron schedules as the CronJob API accepts them (robfig/cron's standard parser), checked at the door.

Five fields separated by single spaces: minute 0-59, hour 0-23, day of month 1-31, month 1-12 or
JAN-DEC, day of week 0-6 or SUN-SAT (7 is refused, as by the CronJob API). Each field is a
comma-separated list of ``*``, ``?``, a value or a range ``a-b`` (a <= b), each optionally with a
step ``/n`` (n >= 1). Or one of the descriptors ``@yearly @annually @monthly @weekly @daily
@midnight @hourly``. ``L``, ``W``, ``#``, ``TZ=`` and six-field (seconds) forms are refused: the
CronJob the operator renders would be refused too.

Three forms of the one rule: :data:`CRON_PATTERN` (the CRD's ``pattern``: syntax and value ranges),
:data:`CRON_RANGE_RULE` (a CEL rule: every range ascends) and :func:`cron_problem` (the models).
"""

from __future__ import annotations

from typing import Final

MAX_CRON_LENGTH: Final = 128
DESCRIPTORS: Final = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
MONTHS: Final = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS: Final = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _names(names: tuple[str, ...]) -> str:
    spelled = [form for name in names for form in (name, name.upper(), name.title())]  # as _spellings
    return "|".join(spelled)


#: Per field: (name, lowest, highest, regex of one value).
FIELDS: Final = (
    ("minute", 0, 59, r"0*([0-9]|[1-5][0-9])"),
    ("hour", 0, 23, r"0*([0-9]|1[0-9]|2[0-3])"),
    ("day of month", 1, 31, r"0*([1-9]|[12][0-9]|3[01])"),
    ("month", 1, 12, rf"(0*([1-9]|1[0-2])|{_names(MONTHS)})"),
    ("day of week", 0, 6, rf"(0*[0-6]|{_names(DAYS)})"),
)
_STEP = r"(/0*[1-9][0-9]{0,3})?"


def _field_pattern(value: str) -> str:
    item = rf"(\*|\?|{value}(-{value})?){_STEP}"
    return f"{item}(,{item})*"


CRON_PATTERN: Final = (
    "^(" + "|".join(DESCRIPTORS) + "|" + " ".join(_field_pattern(f[3]) for f in FIELDS) + ")$"
)

_NAME_VALUES = ", ".join(
    [f"'{n}': {i + 1}" for i, n in enumerate(MONTHS)] + [f"'{n}': {i}" for i, n in enumerate(DAYS)]
)


def _cel_value(token: str) -> str:
    """CEL: the number a cron token (digits or a month/day name) stands for."""
    return f"({token}.matches('^[0-9]+$') ? int({token}) : {{{_NAME_VALUES}}}[{token}.lowerAscii()])"


_LOW = "r.split('-')[0]"
_HIGH = "r.split('-')[1]"
#: CEL: in every ``a-b`` range of a five-field schedule, a <= b (the pattern checked the rest).
CRON_RANGE_RULE: Final = (
    "self.startsWith('@') || self.findAll('[0-9A-Za-z]+-[0-9A-Za-z]+').all(r, "
    f"{_cel_value(_LOW)} <= {_cel_value(_HIGH)})"
)


def _spellings(name: str) -> tuple[str, str, str]:
    return name, name.upper(), name.title()


def _value(token: str, low: int, high: int) -> int | None:
    if token.isascii() and token.isdigit():
        number = int(token)
    elif token in _spellings(token.lower()) and token.lower() in MONTHS and (low, high) == (1, 12):
        number = MONTHS.index(token.lower()) + 1
    elif token in _spellings(token.lower()) and token.lower() in DAYS and (low, high) == (0, 6):
        number = DAYS.index(token.lower())
    else:
        return None
    return number if low <= number <= high else None


def _item_problem(item: str, name: str, low: int, high: int) -> str | None:
    base, _, step = item.partition("/")
    if step and not (step.isascii() and step.isdigit() and 1 <= int(step) <= 9999):
        return f"the {name} step {step!r} must be a whole number from 1"
    if base in ("*", "?"):
        return None
    bounds = base.split("-")
    values = [_value(token, low, high) for token in bounds]
    if len(bounds) > 2 or any(v is None for v in values):
        return f"the {name} field {item!r} must be *, ?, or values in {low}-{high}"
    if len(values) == 2 and values[0] > values[1]:  # type: ignore[operator]
        return f"the {name} range {base!r} runs backwards"
    return None


def cron_problem(schedule: str) -> str | None:
    """Why the CronJob API would refuse ``schedule`` (None: it is valid)."""
    if len(schedule) > MAX_CRON_LENGTH:
        return f"a schedule has at most {MAX_CRON_LENGTH} characters"
    if schedule.startswith("@"):
        return None if schedule in DESCRIPTORS else f"unknown descriptor {schedule!r}"
    fields = schedule.split(" ")
    if len(fields) != len(FIELDS):
        return "a schedule has five fields separated by single spaces (minute hour day month weekday)"
    for text, (name, low, high, _) in zip(fields, FIELDS, strict=True):
        for item in text.split(","):
            problem = _item_problem(item, name, low, high)
            if problem:
                return problem
    return None
