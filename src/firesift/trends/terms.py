"""Term extraction: what a post is "about", as counted by the trend tracker.

One pass over the lower-cased text yields five kinds of terms, each spelled so that the kind
is visible in the term itself (so no per-term tag has to be stored):

- ``#tag``        hashtags (the body must contain a letter: ``#1`` is not a topic);
- ``@handle``     mentioned accounts (the account a textual ``RT @x:`` repeats is not a mention);
- ``word``        words that start with a letter (bare numbers such as ``2015`` or ``3.3`` are
  ignored; ``mh17`` is kept), at least two characters, not a stopword;
- ``two words``   bigrams of *adjacent* non-stopword words: a stopword, hashtag, mention, link
  or number between two words breaks the phrase, which keeps phrases few and meaningful
  ("lax airport", not "shooting lax" out of "shooting at lax");
- ``domain`` and ``domain/path`` links, from the post's expanded URLs when the parser supplied
  them, else from the text. Shortener domains (t.co, bit.ly, ...) are not link terms, and a
  ``t.co`` URL is not one either (each tweet gets its own, so it never repeats).

Stopwords: a compact built-in list for English, French, German, Spanish, Italian, Dutch and
Portuguese plus social-media noise (``rt``, ``via``, ``amp``). Elisions are split (``l'homme``
-> ``homme``, ``people's`` -> ``people``). Scripts without spaces (Chinese, Japanese) come out
as long single "words"; that is a known limitation of a dependency-free tokenizer.

The *dedupe key* is the normalised text: its terms (hashtags, links, non-stopword words and
phrases) and numbers, without handles, stopwords, punctuation and the ``RT @x:`` prefix.
Identical normalised texts count once, so texts that differ only in case, punctuation, handles
or stopwords are treated as the near-duplicates they usually are (copy-paste campaigns,
"RT"-by-hand), while bot reports that differ in a number ("M 3.3" vs "M 4.1") stay distinct.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from firesift.post import Post

if TYPE_CHECKING:
    from firesift.trends.model import TrendKind

__all__ = [
    "STOPWORDS",
    "Extracted",
    "clean_text",
    "extract",
    "term_kind",
]

_STOP_TEXT: Final = """
a about above after again against all also am an and any are aren as at be because been before
being below between both but by can cannot could couldn did didn do does doesn doing don down
during each few for from further get got had hadn has hasn have haven having he her here hers
herself him himself his how i if in into is isn it its itself just let ll me more most much must
mustn my myself no nor not now of off on once only or other our ours ourselves out over own re
same shan she should shouldn so some such than that the their theirs them themselves then there
these they this those through to too under until up us very ve was wasn we were weren what when
where which while who whom why will with won would wouldn you your yours yourself yourselves
im ive youre thats dont cant wont didnt doesnt isnt arent wasnt one two also may might still
even yet via rt amp http https www com co html htm gt lt de la le les un une des du et en est
au aux ce ces cet cette dans elle il ils je tu nous vous leur leurs lui mais ou où par pas pour
qui que quoi sa se ses son sont sur ta te tes ton toi moi mon ma mes ne ni on plus très été être
avec sans comme fait faire ont avait était sous entre aussi après avant donc car si déjà tout
tous toute toutes der die das den dem des ein eine einer eines einem einen und oder aber nicht
ist sind war waren wird werden hat haben hatte ich du er sie es wir ihr mit von zu zum zur auf
aus bei nach vor über unter durch für gegen ohne um im am ans ins vom auch noch nur schon sehr
wie wo wer was wenn dass als so dann doch mal kein keine mehr man sich sein seine ihre ihren
el los las lo una unos unas y o pero sino ni que del al en por para con sin sobre entre hasta
desde es son fue ser está están estar ha han hay muy más menos ya se su sus le les mi mis tu
tus yo él ella ellos ellas nosotros esto esta este estos estas eso esa ese como cuando donde
también porque il lo gli della dello delle degli nel nella nei nelle sul sulla col coi che chi
cui non per tra fra di da ad ed è e sono era erano essere ho hai abbiamo hanno questo questa
questi queste quello quella anche come più molto ma se mi ti ci vi si suo sua suoi sue loro
het een en van ik je jij hij zij wij jullie ze mijn zijn haar ons onze niet geen wel ook al
maar want dus om te op aan bij met voor naar uit over door dat dit deze die wat wie waar hoe
er nog dan toen als heeft hebben had was waren wordt worden kan kunnen zal zullen o os as um
uma uns umas do dos das no nos na nas pelo pela pelos pelas ao aos e ou mas não sim que se
para com sem por em é são foi ser estar está estão tem têm ter seu sua seus suas ele ela eles
elas isso isto esse essa este esta já muito mais também quando onde como
"""
STOPWORDS: Final[frozenset[str]] = frozenset(_STOP_TEXT.split())

_SHORTENER_TEXT: Final = """
t.co bit.ly ow.ly tinyurl.com buff.ly goo.gl dlvr.it fb.me ift.tt is.gd trib.al lnkd.in wp.me
j.mp youtu.be shar.es tl.gd su.pr
"""
_SHORTENERS: Final = frozenset(_SHORTENER_TEXT.split())
_NO_PATH_TERM: Final = frozenset({"t.co"})

_TOKEN = re.compile(
    r"(https?://[^\s<>\"']+|www\.[^\s<>\"']+)"
    r"|#(\w+)"
    r"|@([\w.\-]*\w)"
    r"|([^\W\d_][\w'’]*)"
    r"|(\d[\d.,:]*)"
)
_RT_PREFIX = re.compile(r"^\s*rt\s+@([\w.\-]+):?\s*", re.IGNORECASE)
_CLEAN_RT = re.compile(r"^\s*RT\s+@[\w.\-]+:?\s*|\bRT\s+@[\w.\-]+:?\s*", re.IGNORECASE)
_CLEAN_HANDLE = re.compile(r"(?<![\w@])@[\w.\-]*\w")
_CLEAN_URL = re.compile(r"https?://\S+|www\.\S+")
_SPACES = re.compile(r"\s+")
_HAS_LETTER = re.compile(r"[^\W\d_]")
_PUNCT: Final = '.,;:!?¡¿()[]{}"“”«»…|*~'


class Extracted:
    """Terms of one post (unique, in first-seen order), its dedupe key and repost target."""

    __slots__ = ("dedupe", "repost_of", "terms")

    def __init__(
        self, terms: tuple[str, ...], dedupe: tuple[str, ...], repost_of: str | None
    ) -> None:
        self.terms = terms
        self.dedupe = dedupe
        self.repost_of = repost_of


def _link_terms(url: str, out: list[str]) -> None:
    u = url.lower()
    if u.startswith("https://"):
        u = u[8:]
    elif u.startswith("http://"):
        u = u[7:]
    u = u.split("#", 1)[0].split("?", 1)[0].rstrip("/.,;:!)…")
    if u.startswith("www."):
        u = u[4:]
    if not u:
        return
    domain, _, path = u.partition("/")
    if not domain or "." not in domain:
        return
    if domain not in _SHORTENERS:
        out.append(domain)
    if path and domain not in _NO_PATH_TERM:
        out.append(u[:120])


def extract(post: Post) -> Extracted:
    """The terms of ``post`` (see the module docstring). Cost: O(tokens); plain words skip the
    regex, which only runs on tokens that are not all letters."""
    text = post.text
    lower = text.lower()
    repost_of = post.repost_of
    rt_handle = ""
    if lower.startswith("rt @") or lower.lstrip().startswith("rt @"):
        m = _RT_PREFIX.match(lower)
        if m is not None:
            rt_handle = m.group(1)
            lower = lower[m.end() :]
    terms: list[str] = []
    norm: list[str] = []
    prev = ""
    stop = STOPWORDS
    from_text_urls = not post.urls
    from_text_mentions = not post.mentions
    findall = _TOKEN.findall
    for tok in lower.split():
        if tok.isalpha():
            word = tok
        else:
            bare = tok.strip(_PUNCT)
            word = bare
            if not bare.isalpha():
                for url, tag, handle, word, number in findall(bare):
                    if word:
                        if "'" in word or "’" in word:
                            head, _, tail = word.replace("’", "'").partition("'")
                            word = tail if len(head) <= 2 and tail else head
                        if not 1 < len(word) <= 40 or word in stop:
                            prev = ""
                            continue
                        terms.append(word)
                        if prev:
                            terms.append(prev + " " + word)
                        prev = word
                        continue
                    prev = ""
                    if tag:
                        if _HAS_LETTER.search(tag):
                            terms.append("#" + tag)
                    elif handle:
                        if from_text_mentions and handle != rt_handle:
                            terms.append("@" + handle)
                    elif number:
                        norm.append(number)
                    elif url and from_text_urls:
                        _link_terms(url, terms)
                continue
        if not 1 < len(word) <= 40 or word in stop:
            prev = ""
            continue
        terms.append(word)
        if prev:
            terms.append(prev + " " + word)
        prev = word
    if not from_text_mentions:
        terms.extend("@" + h.lower().lstrip("@") for h in post.mentions if h.lower() != rt_handle)
    if not from_text_urls:
        for url in post.urls:
            _link_terms(url, terms)
    unique = tuple(dict.fromkeys(terms))
    dedupe = tuple([t for t in unique if t[0] != "@"]) if "@" in lower or post.mentions else unique
    if norm:
        dedupe += tuple(norm)
    if rt_handle and repost_of is None:
        repost_of = f"~{hash(dedupe):x}"
    return Extracted(unique, dedupe, repost_of)


def term_kind(term: str) -> TrendKind:
    """``hashtag``, ``mention``, ``phrase``, ``link`` or ``word``, read off the term's spelling."""
    first = term[0]
    if first == "#":
        return "hashtag"
    if first == "@":
        return "mention"
    if " " in term:
        return "phrase"
    if "." in term or "/" in term:
        return "link"
    return "word"


def clean_text(text: str) -> str:
    """``text`` without ``RT @x:`` prefixes, handles and links, whitespace collapsed (titles)."""
    text = _CLEAN_RT.sub(" ", text)
    text = _CLEAN_URL.sub(" ", text)
    text = _CLEAN_HANDLE.sub(" ", text)
    text = text.replace("&amp;", "&").replace("&gt;", ">").replace("&lt;", "<")
    # ".@cnn is safe" (a handle made public by a leading dot) must not leave ". is safe".
    return _SPACES.sub(" ", text).strip(" :-–—|…\"'").lstrip(".,;: ")
