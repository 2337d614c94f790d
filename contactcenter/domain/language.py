"""The language a message is written in, for routing rules: a best guess, or None.

py3langid (a naive Bayes model over byte n-grams, 97 languages) does the guessing, with two
guards around it:
- too little to tell: fewer than MIN_LETTERS letters gives None, and so does a guess the model
  itself puts below MIN_CONFIDENCE (short greetings such as "hello" come out as Breton);
- Chinese: text whose letters are mostly Han characters, with no Japanese kana, is "zh"
  without asking the model, which otherwise wavers between zh and yue on short texts. The
  Chinese varieties the model knows (yue, wuu ...) are reported as "zh" too: rules test the
  primary subtag, and an admin who says "zh" means written Chinese.
The answer is a primary language subtag in lowercase ("en", "zh", "ja"), as rules compare it.

The model (about 0.7 s to load) is loaded once per process, on first use, under a lock so two
threads never load it twice.
"""

from __future__ import annotations

import threading
import unicodedata
from typing import Any

MIN_LETTERS = 3
MIN_CONFIDENCE = 0.2
# only the start of a long text is read: enough to tell, and bounded work
MAX_CHARS = 2000
# the model's codes for varieties of Chinese; rules see them as "zh"
CHINESE = frozenset({"zh", "yue", "wuu", "cmn", "gan", "hak", "hsn", "nan", "cdo", "lzh"})
# py3langid's code for "no linguistic content"
NO_LANGUAGE = "zxx"

_lock = threading.Lock()
_identifier: Any = None


def _model() -> Any:
    global _identifier
    with _lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        return _identifier


def load_model() -> None:
    """Load the model now (0.5-1 s of CPU), so the first customer's routing does not wait."""
    _model()


def _is_han(char: str) -> bool:
    code = ord(char)
    return (
        0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0x3400 <= code <= 0x4DBF  # extension A
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0x20000 <= code <= 0x3FFFF  # extensions B and later
    )


def _is_kana(char: str) -> bool:
    code = ord(char)
    return 0x3040 <= code <= 0x30FF or 0x31F0 <= code <= 0x31FF


def detect_language(text: str) -> str | None:
    """The primary language subtag of `text`, or None when there is too little to tell."""
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS])
    letters = [c for c in text if unicodedata.category(c).startswith("L")]
    if len(letters) < MIN_LETTERS:
        return None
    han = sum(1 for c in letters if _is_han(c))
    if han * 2 >= len(letters) and not any(_is_kana(c) for c in letters):
        return "zh"
    language, confidence = _model().classify(text)
    if language == NO_LANGUAGE or confidence < MIN_CONFIDENCE:
        return None
    code = str(language).lower()
    return "zh" if code in CHINESE else code
