"""Math typeset at export time, as MathML: browsers draw it with no script and no network.

latex2mathml converts each formula of the exported markdown. Its output is checked before use:
only MathML elements and presentation attributes are kept (no link, no script can come from the
model's TeX), and a formula it cannot convert cleanly stays TeX, for MathJax when online. The TeX,
delimiters included, is kept in the `alttext` attribute, so the HTML still holds every formula as
written.
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET

from nbformat import NotebookNode

from ..dollars import pieces

NAMESPACE = "http://www.w3.org/1998/Math/MathML"
ELEMENTS = frozenset(
    "math semantics mrow mi mn mo mtext mspace ms mfrac msqrt mroot mstyle merror mpadded mphantom "
    "menclose msub msup msubsup munder mover munderover mmultiscripts mprescripts none mtable mtr "
    "mtd mlabeledtr".split()
)
ATTRIBUTES = frozenset(
    "display displaystyle scriptlevel mathvariant mathsize mathcolor notation linethickness "
    "stretchy fence form separator minsize maxsize largeop movablelimits symmetric lspace rspace "
    "accent accentunder width height depth linebreak columnalign rowalign columnspacing "
    "rowspacing columnlines rowlines frame framespacing equalrows equalcolumns".split()
)
_BOX = "border:1px solid currentColor;padding:1px 3px"
_DELIMITERS = (("$$", "$$", True), ("\\[", "\\]", True), ("\\(", "\\)", False), ("$", "$", False))


def mathml(delimited: str) -> str | None:
    """The formula `delimited` (with its delimiters) as MathML, or None to keep it as TeX."""
    from latex2mathml.converter import convert

    opening, closing, display = next(d for d in _DELIMITERS if delimited.startswith(d[0]))
    tex = delimited[len(opening):len(delimited) - len(closing)]
    try:
        root = ET.fromstring(convert(tex, display="block" if display else "inline"))
    except Exception:  # latex2mathml's errors, or output that is not well-formed XML
        return None
    for element in root.iter():
        name = element.tag.rpartition("}")[2]
        unknown_command = name == "mi" and (element.text or "").startswith("\\")
        if name not in ELEMENTS or unknown_command:
            return None
        element.tag = name
        for attribute in list(element.attrib):
            if attribute not in ATTRIBUTES:
                del element.attrib[attribute]
        if name == "menclose":  # Chromium's MathML Core draws no menclose: a CSS box instead
            element.set("style", _BOX)
    root.set("xmlns", NAMESPACE)
    root.set("alttext", delimited)
    return ET.tostring(root, encoding="unicode")


def typeset_markdown(nb: NotebookNode) -> NotebookNode:
    """A copy of `nb` whose markdown cells hold their math as MathML where it converts."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = "".join(
                (mathml(piece) or piece) if kind == "math" else piece for piece, kind in pieces(cell.source)
            )
    return nb
