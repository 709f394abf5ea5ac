"""Checks of score files before partitura reads them: what it would misread or explain badly.

partitura reads a kern file cut short as a shorter piece, drops the notes of a MusicXML part
missing from the part-list, ignores a repeat's ``times``, and answers malformed MEI or kern
with a ``KeyError`` or ``IndexError`` that names no line. These checks find such problems
in the file itself and name them (one line, with its line number where there is one); an MEI
file without ``xml:id`` attributes, which partitura cannot read, is given ids instead.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from ..errors import DexterError

XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
MAX_XML_BYTES = 512 * 2 ** 20  # an MXL's score beyond this is left to partitura (which refuses it)


# --- Humdrum kern -------------------------------------------------------------------------------

def check_kern(path: Path) -> None:
    """Refuse a kern file whose spines do not add up: no ``**kern`` spine, a line with more or
    fewer fields than spines are open, no note, or no ``*-`` terminator at the end (a file
    cut short, which partitura would read as a shorter piece).

    Parameters
    ----------
    path : Path
        A ``.krn`` or ``.kern`` file.

    Raises
    ------
    DexterError
    """
    name = Path(path).name
    lines = [(k, ln.rstrip("\r\n")) for k, ln in enumerate(Path(path).read_bytes().decode("latin-1").split("\n"), 1)]
    records = [(k, ln.split("\t")) for k, ln in lines if ln.strip() and not ln.startswith("!")]
    if not records or not any(f.startswith(("**kern", "**notes")) for f in records[0][1]):
        raise DexterError(f"cannot read score {name}: not a Humdrum kern file "
                          "(its first line declares no **kern spine)")
    spines, notes = len(records[0][1]), 0
    for k, fields in records[1:]:
        if spines == 0:
            raise DexterError(f"cannot read score {name}: line {k} comes after every spine ended with *-")
        if len(fields) != spines:
            raise DexterError(f"cannot read score {name}: line {k} has {_count(len(fields), 'field')} where "
                              f"{_count(spines, 'spine')} {'is' if spines == 1 else 'are'} open")
        if all(f.startswith("*") for f in fields):
            spines = _spines_after(fields)
        elif not fields[0].startswith("="):
            notes += 1
    if spines:
        raise DexterError(f"cannot read score {name}: it ends without the spine terminator *- (cut short?); "
                          "a complete kern file ends each spine with *-")
    if notes == 0:
        raise DexterError(f"score has no notes: {name}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _spines_after(fields: list[str]) -> int:
    """Spines open after an interpretation line: ``*^`` splits one, ``*+`` adds one, ``*-`` ends
    one, and a run of adjacent ``*v`` joins its spines into one."""
    n, k = 0, 0
    while k < len(fields):
        f = fields[k]
        if f == "*v":
            while k + 1 < len(fields) and fields[k + 1] == "*v":
                k += 1
            n += 1
        else:
            n += {"*^": 2, "*+": 2, "*-": 0}.get(f, 1)
        k += 1
    return n


# --- MEI ----------------------------------------------------------------------------------------

def check_mei(path: Path) -> bytes | None:
    """Check the values partitura looks up in an MEI file, and give ids to elements without.

    Parameters
    ----------
    path : Path
        An ``.mei`` file.

    Returns
    -------
    bytes or None
        The document with an ``xml:id`` on every element of its ``<music>`` when some had none
        (partitura needs them), else None (read the file as it is).

    Raises
    ------
    DexterError
        A note without a pitch name a-g or an integer octave, an unknown ``dur`` or ``accid``
        value, an event without a duration, or a tie to a note that does not exist.
    """
    from lxml import etree
    from partitura.io.importmei import MEI_DURS_TO_SYMBOLIC, SIGN_TO_ALTER

    name = Path(path).name
    parser = etree.XMLParser(resolve_entities=False, huge_tree=False, no_network=True, recover=True)
    try:
        root = etree.parse(str(path), parser).getroot()
    except (etree.XMLSyntaxError, OSError):
        return None  # partitura reports it
    if root is None or not isinstance(root.tag, str):
        return None
    ns = root.nsmap.get(None)
    if ns is None:  # partitura looks the MEI namespace up as the root's default one
        raise DexterError(f"cannot read score {name}: its root <{root.tag}> declares no default namespace "
                          f'(xmlns="http://www.music-encoding.org/ns/mei"), which partitura needs')
    music = root.find(f".//{{{ns}}}music")
    if music is None:
        return None

    def local(el) -> str:
        return etree.QName(el).localname if isinstance(el.tag, str) else ""

    def bad(el, what: str) -> DexterError:
        return DexterError(f"cannot read score {name}: line {el.sourceline}: <{local(el)}> {what}")

    elements = [el for el in music.iter() if isinstance(el.tag, str)]
    ids = {el.get(XML_ID) for el in root.iter() if isinstance(el.tag, str)} - {None}
    note_ids = {el.get(XML_ID) for el in elements if local(el) == "note"}
    for el in elements:
        tag = local(el)
        if tag == "note":
            pname, octave = el.get("pname"), el.get("oct")
            if pname is None or pname.lower() not in tuple("abcdefg"):
                raise bad(el, f"has pname {pname!r}: a note needs a pitch name a-g" if pname is not None
                          else "has no pname: a note needs a pitch name a-g")
            if octave is None or not re.fullmatch(r"-?\d+", octave.strip()):
                raise bad(el, f"has oct {octave!r}: a note needs an integer octave" if octave is not None
                          else "has no oct: a note needs an integer octave")
        looked_up = {"dur": MEI_DURS_TO_SYMBOLIC} if tag in ("note", "rest", "chord", "space") else {}
        if tag in ("note", "accid"):
            looked_up.update({"accid": SIGN_TO_ALTER, "accid.ges": SIGN_TO_ALTER})
        for attr, valid in looked_up.items():
            value = el.get(attr)
            if value is not None and value not in valid:
                raise bad(el, f"has {attr}={value!r}, not one of {', '.join(valid)}")
        in_chord = el.getparent() is not None and local(el.getparent()) == "chord"
        if tag in ("note", "rest", "chord") and not in_chord and el.get("dur") is None and el.get("sameas") is None:
            raise bad(el, "has no dur: partitura needs the duration of every note, chord and rest")
        if tag == "tie":
            for end in ("startid", "endid"):
                ref = el.get(end)
                if ref is not None and ref.lstrip("#") not in note_ids:
                    raise bad(el, f"ties to {ref}, which is not a note of the score")
        if "dur" in looked_up and el.get("sameas") is not None and el.get("sameas").lstrip("#") not in ids:
            raise bad(el, f"has sameas={el.get('sameas')!r}, which names no element of the score")
    return _with_ids(root, elements, ids)


def _with_ids(root, elements: list, ids: set) -> bytes | None:
    """The document with an unused ``xml:id`` given to each of ``elements`` without one (None: all had one)."""
    from lxml import etree

    missing = [el for el in elements if el.get(XML_ID) is None]
    if not missing:
        return None
    k = 0
    for el in missing:
        while f"dexter-{k}" in ids:
            k += 1
        el.set(XML_ID, f"dexter-{k}")
        k += 1
    return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")


# --- MusicXML -----------------------------------------------------------------------------------

_REPEAT_TIMES = re.compile(r"""<repeat\b[^>]*\btimes\s*=\s*["']\s*(\d+)""")
_PART = re.compile(r"""<part\s[^>]*\bid\s*=\s*["']([^"']*)["']""")
_SCORE_PART = re.compile(r"""<score-part\s[^>]*\bid\s*=\s*["']([^"']*)["']""")


def musicxml_text(path: Path) -> str | None:
    """The XML text of a MusicXML file, or of an MXL's score (the rootfile its container names);
    None when it cannot be had (partitura then reports why)."""
    path = Path(path)
    try:
        if not zipfile.is_zipfile(path):
            return path.read_bytes().decode("utf-8", errors="replace")
        with zipfile.ZipFile(path) as z:
            container = z.read("META-INF/container.xml").decode("utf-8", errors="replace")
            found = re.search(r"""<rootfile\b[^>]*\bfull-path\s*=\s*["']([^"']+)["']""", container)
            if found is None or z.getinfo(found.group(1)).file_size > MAX_XML_BYTES:
                return None
            return z.read(found.group(1)).decode("utf-8", errors="replace")
    except (OSError, KeyError, zipfile.BadZipFile, RuntimeError, EOFError):
        return None


def check_musicxml(path: Path) -> list[str]:
    """Refuse a MusicXML file with a part missing from its part-list (partitura would drop its
    notes); name the repeats whose ``times`` partitura ignores.

    Parameters
    ----------
    path : Path
        A ``.musicxml``, ``.xml`` or ``.mxl`` file.

    Returns
    -------
    list of str
        One-line warnings (each names the file).

    Raises
    ------
    DexterError
    """
    name = Path(path).name
    text = musicxml_text(path)
    if text is None or "<score-partwise" not in text:
        return []
    listed = set(_SCORE_PART.findall(text))
    orphans = [p for p in dict.fromkeys(_PART.findall(text)) if p not in listed]
    if orphans:
        raise DexterError(f"cannot read score {name}: part {orphans[0]!r} is not in its <part-list> "
                          f"(listed: {', '.join(sorted(listed)) or 'none'}), so its notes would be lost")
    times = sorted({int(t) for t in _REPEAT_TIMES.findall(text)} - {2})
    if not times:
        return []
    return [f"{name}: its repeats ask for {' and '.join(map(str, times))} plays (times=); dexter plays every "
            "repeated section twice (once with --as-written)"]
