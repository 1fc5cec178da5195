"""The interface's languages: gettext catalogs (``aelab/locales``, made with Babel), the visitor's preferred
language from a browser's Accept-Language, and the built-in data sets' class names in each language.

English is the source language: its "translation" is the message itself. ``zh`` is Simplified Chinese
(catalog ``zh_CN``). ``pseudo`` is for tests only: every message comes back marked, ``⟦like this⟧``, so a
test can find text that did not go through the catalog. The CLI and the logs stay English.
"""
from __future__ import annotations

import functools
import gettext
from pathlib import Path

LOCALES = Path(__file__).with_name("locales")
DOMAIN = "aelab"
LANGUAGES = {"en": "English", "zh": "中文"}      # code -> its name, in itself
CATALOGS = {"zh": "zh_CN"}                       # code -> the catalog's folder under LOCALES
DEFAULT = "en"
PSEUDO = "pseudo"
MARKS = ("⟦", "⟧")


def N_(message: str) -> str:
    """Mark ``message`` for extraction without translating it (module-level constants, translated where shown)."""
    return message


class PseudoTranslations(gettext.NullTranslations):
    """Every message marked: what a test sees of text that went through the catalog."""

    def gettext(self, message: str) -> str:
        return f"{MARKS[0]}{message}{MARKS[1]}"


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    """The catalog of ``lang`` (a key of LANGUAGES, or PSEUDO); English, or a language without a compiled
    catalog, gets the messages as they are."""
    if lang == PSEUDO:
        return PseudoTranslations()
    catalog = CATALOGS.get(lang)
    if catalog is None:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALES, languages=[catalog], fallback=True)


def gettext_for(lang: str):
    """``_`` of ``lang``: message -> its translation."""
    return translations(lang).gettext


def number(x: float) -> str:
    """A number as messages show it, in every language: whole numbers with thousands separators, else 3 digits."""
    return f"{x:,.0f}" if abs(x) >= 100 or float(x).is_integer() else f"{x:,.3g}"


class Message(str):
    """A message that keeps its template and values: the English text as a ``str`` (logs, the CLI), and what
    :func:`error_message` needs to say it in another language. It crosses processes (pickle) whole. Values
    may be messages themselves (a worker's "{what} ran out of memory", ``what`` = said("the job"))."""

    def __new__(cls, template: str, **values):
        message = super().__new__(cls, template.format(**values) if values else template)
        message.template, message.values = template, values
        return message

    def __getnewargs_ex__(self):   # pickle: made again from its template and values
        return (self.template,), self.values

    def translated(self, lang: str) -> str:
        _ = gettext_for(lang)
        values = {k: v.translated(lang) if isinstance(v, Message) else v for k, v in self.values.items()}
        return _(self.template).format(**values) if values else _(self.template)


def said(template: str, **values) -> Message:
    """A message of the catalog with its values (`make translations` extracts the template)."""
    return Message(template, **values)


LIMIT_MESSAGE = N_("{what} is {got} {unit}; the limit is {limit} {unit} ({setting})")   # see aelab.errors


def error_message(error: BaseException | str, lang: str) -> str:
    """``error`` as a visitor reads it in ``lang``: an error of aelab (aelab.errors: a refusal above a bound
    too) from the :class:`Message` it carries in ``said``, a worker's :class:`Message` from its own; any other
    error or text as it is (English)."""
    message = getattr(error, "said", error)
    return message.translated(lang) if isinstance(message, Message) else str(error)


def preferred_language(accept_language: str | None) -> str:
    """The first language of LANGUAGES that a browser's Accept-Language header (or a locale such as 'zh-CN')
    asks for, by its weight; DEFAULT when none. Chinese in any script or region gets ``zh``."""
    wanted = []
    for position, part in enumerate((accept_language or "").split(",")[:20]):   # a header is a visitor's input
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        code = tag.strip().replace("_", "-").split("-")[0].lower()
        if code in LANGUAGES and weight > 0:
            wanted.append((-weight, position, code))
    return min(wanted)[2] if wanted else DEFAULT


# The built-in data sets' class names, marked for the catalog; runs store them in English.
CLASS_NAMES = {
    "fashion-mnist": (N_("T-shirt/top"), N_("Trouser"), N_("Pullover"), N_("Dress"), N_("Coat"), N_("Sandal"),
                      N_("Shirt"), N_("Sneaker"), N_("Bag"), N_("Ankle boot")),
}


def class_names(data_name: str, names, lang: str) -> list[str]:
    """``names`` (a data set's classes, or some of them, as stored) as shown in ``lang``: the built-in data sets'
    classes translated, an upload's as its owner named them."""
    names = [str(n) for n in names]
    if not set(names) <= set(CLASS_NAMES.get(data_name, ())):
        return names
    _ = gettext_for(lang)
    return [_(n) for n in names]
