"""The de-identification recipe: a deid-format file, parsed by the deid library and
compiled into one small program per kind of element for the engine.

What a recipe means is what the deid library does with it (``DicomParser.parse``):

- Actions run in the order written. A field is a keyword, a tag (``(0010,0010)`` or
  ``00100010``), a dictionary name, ``ALL``, or an expander: ``startswith:``,
  ``endswith:``, ``contains:``, ``except:`` (regular expressions, case-insensitive,
  on the keyword path, tag and name) and ``select:VR:xx`` / ``select:group:gggg``.
  Plain names match at every nesting level and in the file meta.
- ``KEEP``: a tag that a top-level element matching a KEEP has is left untouched
  wherever it occurs, and so is everything inside it. deid's own never-touched list
  (pixel data, palettes, VOI LUT sequence, file meta version, transfer syntax,
  implementation class) is honoured the same way.
- ``REMOVE`` does not remove what any ``REPLACE`` or ``JITTER`` matches.
- ``ADD`` sets a top-level (or file meta) element whether or not it was there.
- Private tags are removed before the recipe runs (deid's ``remove_private=True``).
- dicom-ops adds one element no recipe line asks for: DeidentificationMethodCodeSequence
  (0012,0064), the CID 7050 codes of the profile and options the recipe's outcomes
  conform to (``profile.declared_codes``; none when it does not conform). deid's format
  cannot add a sequence, and the codes must follow what the recipe does, not what it says.

What dicom-ops refuses (a ``RecipeError`` naming the file and line): lowercase or
unknown actions, ``LABEL`` in ``%header``, ``%values``/``%fields`` lists, nested
``A__B`` fields, conditional ``REMOVE``, ``deid_func:``, unknown ``var:``/``func:``
names, non-ASCII values. ``%filter`` sections are accepted and ignored: they drive
pixel scrubbing, and dicom-ops refuses burned-in annotation instead.

Compiling needs deid (parsing) and pydicom (tag names). With ``cache_dir`` the parsed
actions and every tag name looked up are kept in ``deid-<sha256>-<python>.marshal``
there, so a warm process needs neither library. This module imports ``re`` and
``pathlib`` only where they are needed: a warm start stays light.

Long because a recipe's meaning is kept in one place: the rules above, the checks that
refuse what dicom-ops would read differently from deid (``_check_lines``,
``_field_matcher``, ``_value_spec``), and the compiler that applies those rules to each
kind of element (``Recipe._compile``) must agree line for line, and the tests that pin
our reading to deid's (``tests/unit/deid/test_deid_agreement.py``) exercise them together.
The on-disk cache (about 60 lines) stores the checked ``Action`` lines and rebuilds a
``Recipe`` from them, so it stays beside both.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
from collections.abc import Callable

from dicom_ops.deid.part10 import TEXT_VRS
from dicom_ops.deid.tags import TagDictionary, dictionary_fingerprint, tag_for_keyword

CACHE_FORMAT = 2
DEIDENTIFICATION_METHOD_CODES = 0x00120064  # DeidentificationMethodCodeSequence
HEADER_ACTIONS = ("ADD", "BLANK", "JITTER", "KEEP", "REPLACE", "REMOVE")
EXPANDERS = ("startswith", "endswith", "contains", "except", "select")
VALUE_VARS = ("pseudonym", "empty", "date_offset_days")
VALUE_FUNCS = ("deid_uid",)

# deid's never-touched list (deid/dicom/config.json "skip"), as tags.
SKIP_TAGS = frozenset({
    0x7FE00010,  # PixelData
    0x00281201, 0x00281202, 0x00281203,  # Red/Green/BluePaletteColorLookupTableData
    0x00283010,  # VOILUTSequence
    0x00020000, 0x00020001,  # FileMetaInformationGroupLength, FileMetaInformationVersion
    0x00020010, 0x00020012,  # TransferSyntaxUID, ImplementationClassUID
})

# Levels an element can be at: programs differ (KEEP and ADD act on the top level).
META, TOP, NESTED = 0, 1, 2

# Program kinds.
UNTOUCHED = 0  # copy the element's bytes as they are, sequence contents included
PASS = 1  # no action: copy a value as it is, look inside a sequence
DROP = 2  # removed
STEPS = 3  # run the steps on the value

# Step actions and value kinds.
ADD, BLANK, JITTER, REPLACE, REMOVE = "ADD", "BLANK", "JITTER", "REPLACE", "REMOVE"
LITERAL, VAR, FUNC, DAYS, CODES = "literal", "var", "func", "days", "codes"

Step = tuple[str, tuple[str, object] | None]
Program = tuple[int, tuple[Step, ...]]
PROGRAM_UNTOUCHED: Program = (UNTOUCHED, ())
PROGRAM_PASS: Program = (PASS, ())
PROGRAM_DROP: Program = (DROP, ())


class RecipeError(ValueError):
    """The recipe cannot be used; the message names the file and line."""


class _ElementView:
    """What deid matches a field against, for one kind of element."""

    __slots__ = ("tag", "vr", "keyword", "name", "path", "tag_text", "stripped")

    def __init__(self, tag: int, vr: str, keyword: str, name: str, path: str) -> None:
        self.tag = tag
        self.vr = vr
        self.keyword = keyword
        self.name = name
        self.path = path  # keyword path, "Sequence__Child" when nested
        self.tag_text = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
        self.stripped = self.tag_text[1:5] + self.tag_text[6:10]

    def exact(self, field: str) -> bool:
        return field in (self.path.lower(), self.tag_text.lower(), self.stripped.lower(),
                         self.name.lower(), self.keyword.lower())

    def name_contains(self, pattern) -> bool:
        return any(pattern.search(text) for text in (
            self.path.lower(), self.tag_text.lower(), self.stripped, self.name, self.keyword))


Matcher = Callable[[_ElementView], bool]


class Action:
    """One header line of the recipe, checked and compiled."""

    __slots__ = ("line", "action", "field", "value", "matches", "path_dependent", "spec",
                 "add_tag", "add_vr")

    def __init__(self, line: int, action: str, field: str, value: str | None) -> None:
        self.line = line
        self.action = action
        self.field = field
        self.value = value
        self.matches: Matcher = _always
        self.path_dependent = False
        self.spec: tuple[str, object] | None = None
        self.add_tag = 0
        self.add_vr = ""

    def as_list(self) -> list:
        return [self.line, self.action, self.field, self.value, self.add_tag, self.add_vr]


def _always(view: _ElementView) -> bool:
    return True


def _field_matcher(field: str, where: str) -> tuple[Matcher, bool]:
    """deid's field expression as a predicate; and whether it depends on nesting."""
    if field.lower() == "all":
        return _always, False
    if "__" in field:
        raise RecipeError(f"{where}: nested fields ({field}) are not supported; "
                          "use the keyword, which matches at every level")
    if field.lower().startswith(("values:", "fields:")):
        raise RecipeError(f"{where}: %values and %fields lists are not supported")
    if ":" not in field or field.startswith("("):
        wanted = field.lower()
        return (lambda view: view.exact(wanted)), False
    expander, expression = field.split(":", 1)
    expander = expander.lower()
    expression = expression.lower()
    if expander not in EXPANDERS:
        raise RecipeError(f"{where}: unknown expander {expander}: (expected one of "
                          f"{', '.join(EXPANDERS)})")
    if expander == "select":
        attribute, _, wanted = expression.partition(":")
        if attribute == "vr" and len(wanted) >= 2:
            vr = wanted[:2].upper()
            return (lambda view: view.vr == vr), False
        if attribute == "group" and 1 <= len(wanted) <= 4 and all(
                c in "0123456789abcdef" for c in wanted):
            group = int(wanted, 16)
            return (lambda view: view.tag >> 16 == group), False
        raise RecipeError(f"{where}: select: expects VR:xx or group:gggg, got {expression}")
    import re

    if expander == "endswith":
        expression = f"({expression})$"
    elif expander == "startswith":
        expression = f"^({expression})"
    try:
        pattern = re.compile(expression, re.IGNORECASE)
    except re.error as exc:
        raise RecipeError(f"{where}: bad regular expression in {field}: {exc}") from None
    if expander == "except":
        return (lambda view: not view.name_contains(pattern)), True
    return (lambda view: view.name_contains(pattern)), True


def _value_spec(action: Action, where: str) -> tuple[str, object] | None:
    value = action.value
    if value is None:
        return None
    if not value.isascii():
        raise RecipeError(f"{where}: values must be ASCII")
    kind, _, name = value.partition(":")
    if kind == "deid_func":
        raise RecipeError(f"{where}: deid_func: values are not supported; use "
                          f"func:{VALUE_FUNCS[0]} or var:{'/'.join(VALUE_VARS)}")
    if kind == "var":
        if name not in VALUE_VARS:
            raise RecipeError(f"{where}: unknown var:{name} (known: {', '.join(VALUE_VARS)})")
        if (name == "date_offset_days") != (action.action == JITTER):
            raise RecipeError(f"{where}: var:date_offset_days is for JITTER, and JITTER needs it "
                              "or a number of days")
        return (VAR, name)
    if kind == "func":
        if name not in VALUE_FUNCS or action.action != REPLACE:
            raise RecipeError(f"{where}: func:{name} is not known here (REPLACE ... "
                              f"func:{VALUE_FUNCS[0]})")
        return (FUNC, name)
    if action.action == JITTER:
        try:
            return (DAYS, int(value))
        except ValueError:
            raise RecipeError(f"{where}: JITTER needs var:date_offset_days or a whole number "
                              "of days") from None
    return (LITERAL, value.encode("ascii"))


def _tokens(line: str) -> list[str]:
    return line.split()


def _check_lines(path: str, text: str) -> list[Action]:
    """Our reading of the file, line by line, with errors that name the line."""
    import re

    actions: list[Action] = []
    section = None
    saw_format = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        where = f"{path}, line {number}"
        if not line or line.startswith("#"):
            continue
        if re.match("^format", line, re.I):
            if re.sub(r"FORMAT|(\s+)", "", line).lower() != "dicom":
                raise RecipeError(f"{where}: expected FORMAT dicom")
            saw_format = True
            continue
        if line.startswith("%"):
            section = line.split("#", 1)[0].strip().split(" ")[0][1:].strip().lower()
            if section in ("values", "fields"):
                raise RecipeError(f"{where}: %{section} lists are not supported")
            if section not in ("header", "filter"):
                raise RecipeError(f"{where}: unknown section %{section} (expected %header or "
                                  "%filter)")
            continue
        if section == "filter":
            continue  # pixel-scrubbing filters: parsed by deid, not used by dicom-ops
        if section != "header":
            raise RecipeError(f"{where}: an action outside %header")
        words = _tokens(line)
        action = words[0]
        if action.upper() in HEADER_ACTIONS + ("LABEL",) and action != action.upper():
            raise RecipeError(f"{where}: write the action in capitals ({action.upper()}); deid "
                              "ignores it otherwise")
        if action not in HEADER_ACTIONS:
            raise RecipeError(f"{where}: unknown action {action} (expected one of "
                              f"{', '.join(HEADER_ACTIONS)})")
        if len(words) < 2 or words[1].startswith("#"):
            raise RecipeError(f"{where}: {action} needs a field")
        value = " ".join(words[2:]).split("#")[0] if len(words) > 2 else None
        if value is not None and not value.strip():
            value = None
        if action in (ADD, REPLACE, JITTER) and value is None:
            raise RecipeError(f"{where}: {action} needs a value")
        if action == REMOVE and value is not None:
            raise RecipeError(f"{where}: conditional REMOVE is not supported")
        if action in ("BLANK", "KEEP") and value is not None:
            raise RecipeError(f"{where}: {action} takes a field only")
        actions.append(Action(number, action, words[1], value))
    if not saw_format:
        raise RecipeError(f"{path}: the recipe must start with FORMAT dicom")
    if not actions:
        raise RecipeError(f"{path}: no actions in a %header section: nothing would be removed")
    return actions


def _parse_with_deid(path: str, ours: list[Action]) -> None:
    """The deid library's parse must read the file exactly as we do."""
    from deid.config import DeidRecipe
    from deid.logger import bot
    from deid.logger.message import ERROR

    chatty, bot.level = bot.level, min(bot.level, ERROR)  # its errors only, not its debug log
    try:
        parsed = DeidRecipe(str(path)).get_actions() or []
    except SystemExit:
        raise RecipeError(f"{path}: the deid library could not parse the recipe "
                          "(its message is above)") from None
    finally:
        bot.level = chatty
    for index, action in enumerate(ours):
        theirs = parsed[index] if index < len(parsed) else None
        if theirs is None or (theirs["action"], theirs["field"]) != (action.action, action.field):
            raise RecipeError(f"{path}, line {action.line}: the deid library reads this line "
                              "differently; check quoting and spacing")
        action.value = theirs.get("value", action.value)
    if len(parsed) != len(ours):
        raise RecipeError(f"{path}: the deid library found {len(parsed)} actions, "
                          f"dicom-ops {len(ours)}")


def _resolve_add(action: Action, tags: TagDictionary, where: str) -> None:
    import re

    field = action.field
    if re.fullmatch(r"\([0-9A-Fa-f]{4},[0-9A-Fa-f]{4}\)", field):
        tag = int(field[1:5] + field[6:10], 16)
    elif re.fullmatch(r"[0-9A-Fa-f]{8}", field):
        tag = int(field, 16)
    else:
        tag = tag_for_keyword(field)
        if tag is None:
            raise RecipeError(f"{where}: ADD needs a keyword or tag; {field} is neither")
    if tag >> 16 & 1 or tag >= 0x7FE00010:
        raise RecipeError(f"{where}: ADD of a private tag, or after the pixel data, is not "
                          "supported")
    vr = tags.info(tag)[2]
    if vr.encode() not in TEXT_VRS:
        raise RecipeError(f"{where}: ADD supports text attributes only; {field} is {vr}")
    action.add_tag, action.add_vr = tag, vr


class Recipe:
    """A compiled recipe. ``program(level, tag, vr, path)`` says what happens to an element."""

    def __init__(self, path: str, sha256: str, actions: list[Action],
                 known_tags: dict[int, tuple[str, str, str]] | None = None,
                 cache_file: str | None = None, declared: tuple[str, ...] | None = None
                 ) -> None:
        self.path = path
        self.sha256 = sha256
        self.actions = tuple(actions)
        self.tags = TagDictionary(known_tags)
        self.cache_file = cache_file
        self._saved_tag_count = len(self.tags.known)
        for action in self.actions:
            where = f"{path}, line {action.line}"
            if action.action != ADD:
                action.matches, action.path_dependent = _field_matcher(action.field, where)
            action.spec = _value_spec(action, where)
        self.path_dependent = any(a.path_dependent for a in self.actions)
        self._shields = [a for a in self.actions if a.action in (REPLACE, JITTER)]
        self.adds = tuple(sorted({a.add_tag: a for a in self.actions if a.action == ADD}.values(),
                                 key=lambda a: a.add_tag))
        self._programs: dict[tuple, Program] = {}
        self._keeps: dict[tuple[int, bytes], bool] = {}
        if declared is None:
            from dicom_ops.deid.profile import declared_codes

            declared = declared_codes(self)
        self.declared = tuple(declared)
        if self.declared:
            self._declare(self.declared)

    def _declare(self, codes: tuple[str, ...]) -> None:
        """Add the coded declaration after everything the recipe says (see the module doc)."""
        from dicom_ops.deid.profile import CID_7050

        declaration = Action(0, ADD, "DeidentificationMethodCodeSequence", None)
        declaration.add_tag, declaration.add_vr = DEIDENTIFICATION_METHOD_CODES, "SQ"
        declaration.spec = (CODES, tuple((code, CID_7050[code]) for code in codes))
        self.actions = (*self.actions, declaration)
        self.adds = tuple(sorted((*self.adds, declaration), key=lambda a: a.add_tag))
        self._programs.clear()

    def __repr__(self) -> str:
        return f"Recipe({self.path}, {len(self.actions)} actions)"

    # --- decisions --------------------------------------------------------------------------

    def _view(self, tag: int, vr: bytes, path: str | None) -> _ElementView:
        keyword, name, _ = self.tags.info(tag)
        return _ElementView(tag, vr.decode("ascii", "replace"), keyword, name,
                            keyword if path is None else path)

    def keeps(self, tag: int, vr: bytes) -> bool:
        """Whether a top-level (or file meta) element is matched by a KEEP."""
        key = (tag, vr)
        kept = self._keeps.get(key)
        if kept is None:
            view = self._view(tag, vr, None)
            kept = self._keeps[key] = any(
                a.action == "KEEP" and a.matches(view) for a in self.actions)
        return kept

    def nested_path(self, parent_path: str, tag: int) -> str:
        return f"{parent_path}__{self.tags.info(tag)[0]}"

    def program(self, level: int, tag: int, vr: bytes, path: str | None = None) -> Program:
        """What happens to an element of this kind. ``path`` (keyword path) matters only
        when the recipe has regular-expression expanders (``path_dependent``)."""
        key = (level, tag, vr, path if self.path_dependent else None)
        program = self._programs.get(key)
        if program is None:
            program = self._programs[key] = self._compile(level, tag, vr, key[3])
        return program

    def _compile(self, level: int, tag: int, vr: bytes, path: str | None) -> Program:
        if tag in SKIP_TAGS:
            return PROGRAM_UNTOUCHED
        view = self._view(tag, vr, path)
        top = level != NESTED
        kept = top and self.keeps(tag, vr)
        shielded = any(a.matches(view) for a in self._shields)
        steps: list[Step] = []
        for action in self.actions:
            if action.action == ADD:
                if top and action.add_tag == tag:
                    steps.append((ADD, action.spec))
            elif action.action != "KEEP" and not kept and action.matches(view):
                if action.action == REMOVE and shielded:
                    continue
                steps.append((action.action, action.spec))
        if kept:
            # deid leaves a kept element alone, except that ADD overwrites it.
            first_add = next((i for i, s in enumerate(steps) if s[0] == ADD), None)
            return PROGRAM_UNTOUCHED if first_add is None else (STEPS, tuple(steps[first_add:]))
        if not steps:
            return PROGRAM_PASS
        last_remove = max((i for i, s in enumerate(steps) if s[0] == REMOVE), default=-1)
        if last_remove >= 0 and not any(s[0] == ADD for s in steps[last_remove:]):
            return PROGRAM_DROP
        return (STEPS, tuple(steps))

    def add_program(self, add: Action) -> tuple[Step, ...]:
        """Steps for an element that only exists because of ``add``."""
        program = self.program(META if add.add_tag >> 16 == 2 else TOP, add.add_tag,
                               add.add_vr.encode())
        steps = program[1]
        for index, step in enumerate(steps):
            if step == (ADD, add.spec):
                return steps[index:]
        return ((ADD, add.spec),)

    # --- the on-disk cache --------------------------------------------------------------------

    def remember(self, more_tags: dict[int, tuple[str, str, str]] | None = None) -> None:
        """Add tag names learned (here or in a worker process) and save them with the recipe."""
        if more_tags:
            for tag, info in more_tags.items():
                self.tags.known.setdefault(tag, tuple(info))
        if self.cache_file is None or len(self.tags.known) == self._saved_tag_count:
            return
        _write_cache(self.cache_file, self)
        self._saved_tag_count = len(self.tags.known)


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/dicom-ops`` (``~/.cache/dicom-ops``): for command-line tools."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dicom-ops")


def _cache_path(cache_dir: str | os.PathLike, sha256: str) -> str:
    version = f"py{sys.version_info[0]}{sys.version_info[1]}"
    return os.path.join(cache_dir, f"deid-{sha256[:32]}-{version}.marshal")


def _write_cache(cache_file: str, recipe: Recipe) -> None:
    content = {
        "format": CACHE_FORMAT,
        "sha256": recipe.sha256,
        "dictionary": dictionary_fingerprint(),
        "actions": [a.as_list() for a in recipe.actions if a.line],  # not the declaration
        "declared": list(recipe.declared),
        "tags": dict(sorted(recipe.tags.known.items())),
    }
    temporary = f"{cache_file}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(cache_file), exist_ok=True)
        with open(temporary, "wb") as stream:
            marshal.dump(content, stream)
        os.replace(temporary, cache_file)
    except OSError:
        pass  # a cache we cannot write only costs time


def _read_cache(cache_file: str, path: str, sha256: str) -> Recipe | None:
    try:
        with open(cache_file, "rb") as stream:
            content = marshal.load(stream)
        if (content["format"], content["sha256"], content["dictionary"]) != (
                CACHE_FORMAT, sha256, dictionary_fingerprint()):
            return None
        actions = []
        for line, action, field, value, add_tag, add_vr in content["actions"]:
            compiled = Action(line, action, field, value)
            compiled.add_tag, compiled.add_vr = add_tag, add_vr
            actions.append(compiled)
        return Recipe(path, sha256, actions, content["tags"], cache_file,
                      tuple(content["declared"]))
    except (OSError, ValueError, KeyError, TypeError, EOFError, RecipeError):
        return None


def load_recipe(path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None
                ) -> Recipe:
    """Read, check and compile a deid recipe. Errors name the file and the line.

    With ``cache_dir`` (e.g. ``default_cache_dir()``) the compiled recipe is kept
    there, keyed by the file's SHA-256, for processes that start often.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read the recipe ({exc.strerror})") from None
    sha256 = hashlib.sha256(data).hexdigest()
    cache_file = _cache_path(cache_dir, sha256) if cache_dir is not None else None
    if cache_file is not None:
        cached = _read_cache(cache_file, path, sha256)
        if cached is not None:
            return cached
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RecipeError(f"{path}: the recipe is not UTF-8 text") from None
    actions = _check_lines(path, text)
    _parse_with_deid(path, actions)
    tags = TagDictionary()
    for action in actions:
        if action.action == ADD:
            _resolve_add(action, tags, f"{path}, line {action.line}")
    recipe = Recipe(path, sha256, actions, tags.known, cache_file=cache_file)
    if cache_file is not None:
        _write_cache(cache_file, recipe)
    return recipe
