"""Prompt-injection rules: instruction overrides, system-prompt leaks, role-play jailbreaks, delimiter and
chat-template spoofing, exfiltration asks, encoded payloads (base64, hex, rot13) hiding instructions,
and Unicode tricks (invisible, bidi and tag characters; homoglyphs and full-width letters).

Rules run on a normalised view of the text (NFKC, look-alike letters mapped to Latin, invisible
characters dropped) so ``іgnore previous instructions`` written with a Cyrillic ``і`` or with zero-width
spaces between letters still matches; spans are mapped back to the original text. The learned
classifier (:mod:`services.guard.scanners.injection_model`) is the second stage.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata

import regex

from services.guard.scanners.base import Match, gate_for, gate_text, partial_hold

_F = regex.IGNORECASE | regex.DOTALL
# The user's own "forget my previous message" is no injection: targets are someone else's instructions.
_INSTR = (
    r"(?:instructions?|prompts?|rules?|directions?|guidelines?|context|directives?|guardrails?|policies|programming)"
)
_CYRILLIC_LOOKALIKES = dict(zip("аеорсухі", "aeopcyxi", strict=True))


def _cyr(words: str) -> str:
    """Russian words as the rules see them: :func:`normalise` maps Cyrillic letters that look Latin to Latin
    ones, so each such letter matches either."""
    return "".join(f"[{c}{_CYRILLIC_LOOKALIKES[c]}]" if c in _CYRILLIC_LOOKALIKES else c for c in words)


# Instructions and "earlier/above/system/your/all" in Spanish, Portuguese, French, German, Italian, Dutch, Polish and
# Russian, for the multilingual override rule.
_ML_INSTR = (
    r"\b(?:instrucciones|indicaciones|reglas|normas|directrices|órdenes|instruções|regras|diretrizes|ordens|"
    r"instructions|consignes|règles|directives|anweisungen|regeln|vorgaben|richtlinien|befehle|istruzioni|regole|"
    r"direttive|indicazioni|instructies|regels|richtlijnen|instrukcj\w*|polece\w*|zasad\w*)\b"
)
_ML_EARLIER = (
    r"\b(?:anteriores|previas|precedentes|de arriba|del sistema|de sistema|tus|todas|sus|iniciales|originales|"
    r"suas|todas as|do sistema|précédentes|antérieures|ci-dessus|du système|tes|vos|toutes|initiales|"
    r"vorherigen|bisherigen|vorigen|obigen|früheren|deine|ihre|alle|system\w*|ursprünglichen|"
    r"precedenti|di sistema|tue|sue|tutte|iniziali|originali|"
    r"vorige|eerdere|bovenstaande|je|uw|poprzednie|wszystkie|systemowe)\b"
)
_RU_INSTR = _cyr(r"\b(?:инструкци\w*|указани\w*|правил\w*)\b")
_RU_EARLIER = _cyr(r"\b(?:предыдущи\w*|все|свои|системн\w*|прежни\w*)\b"
)

ROLE_SPOOF_ALONE = 0.6  # a role_spoof match's score when nothing else says the text is an attack
ROLE_SPOOF_CORROBORATED = 0.85  # ... when the learned classifier gives the text at least CORROBORATION
CORROBORATION = 0.5

_RULES: list[tuple[str, float, regex.Pattern[str]]] = [
    ("injection.override", 0.95, regex.compile(
        # "Don't forget to read the instructions" asks to remember them.
        r"\b(?:ignore|disregard|(?<!\b(?:don['’]t|do not|never)\s+)forget|override|bypass|skip|drop|abandon|discard|"
        r"neglect)\b.{0,40}?"
        r"\b(?:all|any|the|your|previous|prior|above|earlier|preceding|system|initial|original|every|those)\b"
        r".{0,25}?\b" + _INSTR + r"\b", _F)),
    # Someone else's limits switched off: "pay no attention to your safety rules", "suspend your content filters".
    ("injection.override", 0.9, regex.compile(
        r"\b(?:ignore|disregard|forget|override|bypass|set aside|put aside|pay no attention to|stop (?:following|"
        r"obeying)|no longer (?:follow|obey)|suspend|revoke|lift|disable|turn off|switch off)\b.{0,20}?"
        r"\b(?:your|its|the assistant's|the model's|all (?:of )?your)\s+(?:(?:current|usual|built-in|internal|default|"
        r"existing|normal|standard|original|own)\s+)?(?:restrictions|filters|safeguards|"
        r"guardrails|limitations|safety (?:rules|training|settings|guidelines|filters|policies)|"
        r"content (?:polic(?:y|ies)|filters?|rules)|ethical (?:guidelines|constraints|rules))\b", _F)),
    ("injection.override", 0.9, regex.compile(
        r"\b(?:do not|don't|never)\s+(?:follow|obey|apply|respect)\b.{0,30}?\b(?:your|the|any|previous|system)\b"
        r".{0,20}?\b" + _INSTR + r"\b"
        r"|\b(?:new|updated|real|actual|true)\s+(?:system\s+)?instructions?\s*(?::|are\b|follow\b)"
        r"|\byour\s+(?:new|real|true)\s+(?:task|goal|purpose|instructions?)\s+(?:is|are)\b"
        r"|\bthe\s+(?:above|previous)\s+(?:instructions?|prompt|text)\s+(?:was|were|is|are)\s+(?:a\s+)?"
        r"(?:test|fake|wrong|void|cancell?ed|obsolete)\b", _F)),
    ("injection.prompt_leak", 0.9, regex.compile(
        r"\b(?:reveal|print|show|repeat|output|display|tell me|leak|dump|write out|give me|spell out|recite)\b"
        r".{0,30}?\b(?:your|the)\b.{0,15}?"
        r"\b(?:system prompt|initial prompt|hidden (?:prompt|instructions)|developer (?:message|prompt)|"
        r"instructions you were given|(?:original|secret|confidential) instructions|pre-?prompt)\b", _F)),
    ("injection.prompt_leak", 0.85, regex.compile(
        r"\b(?:repeat|print|output|quote|copy(?: out)?|recite|reproduce|paste)\b.{0,20}?\b(?:the |all (?:of )?the )?"
        r"(?:text|words|content|everything|instructions?|messages?)\s+(?:above|before (?:this|my))\b"
        r"|\bwhat (?:were|are) you (?:told|instructed|given)\b.{0,30}?\b(?:before|at the (?:start|beginning))\b", _F)),
    ("injection.jailbreak", 0.9, regex.compile(
        r"\b(?:you are now|act as|pretend (?:to be|you are)|from now on,? you are|roleplay as|behave as|you will be)\b"
        r".{0,40}?\b(?:DAN|do anything now|unfiltered|uncensored|jailbroken|unrestricted|evil|amoral|"
        r"without (?:any )?(?:restrictions|rules|limits|filters|guidelines|ethics|morals))\b"
        r"|\b(?:god|jailbreak|DAN) mode\b.{0,20}\b(?:enabled|on|activated|unlocked)\b"
        r"|\b(?:enable|activate|enter|switch to)\s+(?:god|jailbreak|DAN) mode\b", _F)),
    # A persona given in character with no rules, and a persona defined by ignoring them ("an AI that laughs at
    # content policies"); the "deceased grandmother who told me how to make ..." role-play.
    ("injection.jailbreak", 0.9, regex.compile(
        r"\b(?:stay|remain|respond|reply|answer|talk|speak)\s+(?:in character\s+)?as\s+(?:an?|the|my)\s+(?:\w+\s+)?"
        r"(?:amoral|unfiltered|uncensored|jailbroken|unrestricted|unethical|immoral|evil|unaligned|unshackled)\b"
        r"|\b(?:AI|assistant|chatbot|bot|model|character|persona|version of (?:you|yourself))\b.{0,20}?"
        r"\b(?:that|who|which)\s+(?:\w+\s+)?(?:laughs at|mocks|ignores|scoffs at|doesn't care about|does not care "
        r"about|doesn't follow|does not follow|never follows|isn't bound by|is not bound by|refuses to follow|breaks|"
        r"has no|despises|hates)\s+(?:any\s+|all\s+)?(?:the\s+)?(?:content polic\w*|rules|guidelines|filters|"
        r"restrictions|ethics|morals|limits|censorship|safety (?:rules|guidelines|policies))"
        r"|\b(?:act|pretend|play|role-?play|be|imitate|impersonate|you are)\b.{0,40}?\b(?:late|deceased|dead|"
        r"departed)\s+(?:grand\w+|granny|nan|nana|mother|father|mom|mum|dad|uncle|aunt)\b.{0,250}?"
        r"\b(?:explosives?|bombs?|napalm|meth\w*|drugs?|weapons?|poisons?|thermite|nerve agents?|malware|"
        r"viruse?s?|(?:product|license|licence|activation|windows|serial) keys?|serial numbers?|hotwir\w+)\b", _F)),
    # A chat-template token or role header alone is weak evidence (questions about chat templates and operator
    # prompts pasted as a message carry them too: 50 of the rule's 215 hits on the training corpus are benign), so
    # it is a logged finding below the default block threshold until the classifier corroborates it
    # (:func:`corroborate`).
    ("injection.role_spoof", ROLE_SPOOF_ALONE, regex.compile(
        r"(?:^|\n)\s*(?:#{1,3}\s*)?(?:system|assistant|developer)\s*(?:message|prompt)?\s*:"
        r"|<\|?(?:im_start|im_end|system|endoftext|eot_id|start_header_id|end_header_id|begin_of_text)\|?>"
        r"|<\|(?:user|assistant|end)\|>|<(?:start|end)_of_turn>|(?:^|\n\n)(?:Human|Assistant):"
        r"|\[/?(?:INST|SYS)\]|<</?SYS>>|</?(?:system|admin|developer)(?:_prompt|_message)?>"
        r"|[\"']role[\"']\s*:\s*[\"'](?:system|developer)[\"']", regex.IGNORECASE)),
    ("injection.delimiter_spoof", 0.85, regex.compile(
        r"(?:^|\n)\s*(?:[-=#*_~]{3,}|`{3,})\s*(?:end|begin|start|new|stop)\s+(?:of\s+)?(?:the\s+)?"
        r"(?:user|system|prompt|instructions?|input|context|document|conversation|message)\b"
        r"|\b(?:end|close) of (?:user )?(?:input|prompt|document|context)\b.{0,40}?"
        r"\b(?:now|new|system|instructions?)\b",
        _F)),
    ("injection.exfiltration", 0.85, regex.compile(
        r"!\[[^\]]{0,100}\]\(\s*https?://[^)\s]{1,200}[?&][\w-]{1,30}=[^)\s]{0,200}\)"
        r"|\b(?:send|post|forward|upload|exfiltrate|email|leak)\b.{0,60}?\b(?:conversation|chat history|"
        r"system prompt|api keys?|credentials|passwords?|secrets?|user data)\b.{0,40}?\b(?:to|at)\b.{0,10}?"
        r"(?:https?://|[\w.+-]+@[\w-]+\.)", _F)),
    # The same overrides in other languages (Spanish, Portuguese, French, German, Italian, Dutch, Polish; Turkish,
    # Russian, Chinese and Japanese below): a verb of ignoring or forgetting, someone's earlier or system
    # instructions.
    ("injection.override", 0.9, regex.compile(
        r"\b(?:ignor[ae]|ignore[zs]?|ignorier(?:e|en)?|ignori|olvid[ae](?:te de)?|olvídate de|omit[ae]|descart[ae]|"
        r"desconsider[ae]|esque[çc]a|esquece|oublie[zs]?|néglige[zs]?|vergiss|vergessen sie|missachte|"
        r"dimentica|dimentichi|trascura|negeer|vergeet|zignoruj|zapomnij)\b.{0,50}?(?:"
        + _ML_INSTR + r".{0,25}?" + _ML_EARLIER + r"|" + _ML_EARLIER + r".{0,25}?" + _ML_INSTR + r")", _F)),
    # Text inside a document that speaks to the AI reading it (indirect injection): "note to the AI that
    # summarises this", "if you are an LLM reading this", "instructions for automated screeners". Three rules,
    # so that each has its own literal gate.
    ("injection.indirect", 0.85, regex.compile(
        r"\bif (?:you are|you're) an? (?:AI|A\.I\.|LLM|large language model|language model|chatbot|AI assistant|"
        r"automated (?:system|agent|assistant|screener|reviewer)|GPT|bot)\b(?!\s+(?:researcher|engineer|developer|"
        r"enthusiast|student|team|company|startup))", _F)),
    ("injection.indirect", 0.85, regex.compile(
        r"\b(?:AI|A\.I\.|LLMs?|language models?|chatbots?|assistants?|agents?|bots?|models?|screeners?|"
        r"(?:automated|AI) \w+s?)\s+(?:that|which|who)?\s*(?:is\s+|are\s+)?(?:reads?|reading|process(?:es|ing)?|"
        r"summari[sz](?:es|ing)|pars(?:es|ing)|ingest(?:s|ing)|screen(?:s|ing)|crawl(?:s|ing)|index(?:es|ing))\s+"
        r"(?:this|these)\b(?!\s+(?:week|month|year|morning|quarter))", _F)),
    ("injection.indirect", 0.85, regex.compile(
        r"\b(?:notes?|messages?|instructions?|directives?|commands?|memo)\s+(?:to|for)\s+(?:the\s+|any\s+|all\s+)?"
        r"(?:automated|AI|A\.I\.|LLM|GPT)(?:[- ](?!team|teams|group|department|researchers?|engineers?|"
        r"developers?|community|course|class|conference|lab|ethics|policy|act)\w+){0,2}\s*(?:[:,(\-]|that|who|which)",
        _F)),
    # "Forget everything you were told / everything above", in English and the languages above.
    ("injection.override", 0.9, regex.compile(
        r"\b(?:forget|ignore|disregard|discard|erase)\s+(?:about\s+)?(?:everything|all(?: of)?(?: that| what)?)\s+"
        r"(?:(?:that\s+)?(?:you(?:'ve| have)? (?:been|were) (?:told|instructed|taught|given|programmed)|"
        r"(?:they|the developers|your (?:creators|developers|makers)|(?:open)?ai|anyone) (?:told|taught|gave) you|"
        r"(?:above|before this|so far|up to (?:now|this point)|prior to this)))"
        r"|\bvergiss(?:t)?\s+alles\b.{0,40}?\b(?:vorher|bisher|zuvor|davor|oben|gesagt|beigebracht|aufgetragen)\b"
        r"|\bolvid[ae]\s+todo\s+lo\s+(?:anterior|que\s+te\s+(?:han\s+)?(?:dijeron|dicho|ordenaron|indicaron))"
        r"|\boublie[zs]?\s+tout\s+ce\s+(?:qui\s+précède|qu[e']\s*(?:l'on|on)\s+(?:t'a|vous\s+a)\s+dit)"
        r"|\bdimentica\s+tutto\s+(?:quello|ciò)\s+che\s+ti\s+(?:hanno|è\s+stato)\s+detto"
        r"|\besque[çc]a\s+tudo\s+o\s+que\s+(?:te|lhe)\s+(?:disseram|foi\s+dito)", _F)),
    # Claimed policy changes that grant what the rules forbid, and filters switched off by assignment.
    ("injection.override", 0.9, regex.compile(
        r"\b(?:new|updated|revised|latest)\s+(?:rule ?set|rules|polic(?:y|ies)|guidelines|instructions|directives?)"
        r"\b.{0,30}?\b(?:supersedes?|overrides?|replaces?|overrules?|cancels?|takes? precedence over|voids?)\b"
        r"|\b(?:polic(?:y|ies)|rules?|guidelines|settings|restrictions|filters|configuration)\b.{0,40}?"
        r"\b(?:updated|changed|pushed|lifted|removed|revoked|disabled|relaxed|deployed|rolled out)\b.{0,80}?"
        r"(?:\byou\s+(?:may|can|are (?:allowed|permitted|free) to)\s+now\s+(?:share|reveal|disclose|ignore|bypass|"
        r"say anything|answer anything|output)|\b(?:secrets?|passwords?|credentials|confidential \w+|internal \w+|"
        r"(?:the )?system prompt)\s+(?:may|can|is allowed to|are allowed to)\s+(?:now\s+)?be\s+"
        r"(?:shared|revealed|disclosed|given))"
        r"|\b(?:content[ _-]?(?:filter(?:ing|s)?|moderation|policy)|safety[ _-]?(?:filters?|mode|checks?|layer|"
        r"guidelines)|moderation|guardrails?|censorship)\s*(?:=|:=|:|is now|are now|set to)\s*"
        r"(?:false|off|disabled|none|0|null)\b", _F)),
    ("injection.encoded_instruction", 0.8, regex.compile(
        r"\b(?:decode|decrypt|de-?obfuscate|translate|convert|read)\b.{0,40}?\b(?:base64|base-64|hex|rot-?13|"
        r"caesar|binary|morse|reversed?)\b.{0,60}?\b(?:follow|execute|obey|do|run|carry out|act on|perform)\b", _F)),
]
# Overrides in Turkish, Chinese, Japanese and Russian: run only on texts that are not ASCII.
_NON_LATIN_RULES: list[tuple[str, float, regex.Pattern[str]]] = [
    ("injection.override", 0.9, regex.compile(
        r"(?:önceki|tüm|bütün|sistem)\b.{0,30}?\b(?:talimat|kural|yönerge)\w*.{0,20}?\b(?:unut|yok say|"
        r"görmezden gel|dikkate alma)"
        r"|(?:忽略|无视|忘记|忘掉|不要理会|無視|忘れ).{0,12}?(?:之前|以上|上面|先前|所有|以前|これまで|上記).{0,8}?"
        r"(?:指令|指示|规则|規則|说明|命令|设定|設定)"
        r"|(?:之前|以上|上面|先前|所有|以前|これまで|上記).{0,8}?(?:指令|指示|规则|規則|命令).{0,8}?(?:忽略|无视|忘记|無視)",
        _F)),
    ("injection.override", 0.9, regex.compile(
        _cyr(r"\b(?:игнорируй(?:те)?|проигнорируй(?:те)?|забудь(?:те)?)\b") + r".{0,50}?(?:" + _RU_INSTR + r".{0,25}?"
        + _RU_EARLIER + r"|" + _RU_EARLIER + r".{0,25}?" + _RU_INSTR + r")", _F)),
]
_SEMANTIC_KINDS = ("injection.override", "injection.prompt_leak", "injection.jailbreak", "injection.indirect")
_ROLE_SPOOF = next(rx for kind, _, rx in _RULES if kind == "injection.role_spoof")

# Invisible characters: zero-width (not ZWJ/ZWNJ, which emoji and Indic scripts use), word joiners, BOM.
_ZERO_WIDTH = regex.compile("[\u200b\u200e\u200f\u2060-\u2064\u180e\ufeff]+|[\u200c\u200d]{3,}")
_BIDI = regex.compile("[\u202a-\u202e\u2066-\u2069]+")
_TAGS = regex.compile("[\U000e0000-\U000e007f]+")
_DROP = dict.fromkeys(
    [*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2065), *range(0x2066, 0x206A), 0x180E, 0xFEFF,
     0x00AD, *range(0xE0000, 0xE0080)]
)
# Look-alike letters from Cyrillic and Greek that render like Latin ones.
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁɡһӏԛԝАВЕКМНОРСТХІЈЅΑΒΕΖΗΙΚΜΝΟΡΤΥΧαοτνικ",
    "aeopcyxijsdghlqwABEKMHOPCTXIJSABEZHIKMNOPTYXaotvik",
)
_MIXED_SCRIPT_WORD = regex.compile(r"\b(?=\w*\p{Latin})(?=\w*[\p{Cyrillic}\p{Greek}])\w{3,}\b")
# ``re``, not ``regex``: several times faster on these ASCII classes (they are never partially matched).
_BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{20,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX_RUN = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}[ :]?){12,}(?![0-9A-Fa-f])")
# Obfuscations that keep the words readable to a model: l33t digits, letters spaced out, text written backwards.
# Each has a cheap gate, so prose pays one pass for all of them.
_LEET_GATE = regex.compile(r"[a-zA-Z][013457][a-zA-Z]")
_LEET_WORD = regex.compile(r"\b(?=[a-z@$]*[013457])(?=[0-9@$]*[a-z])[a-z0-9@$]{3,}\b", regex.IGNORECASE)
_LEET = str.maketrans("013457@$", "oieastas")
_SPACED_GATE = regex.compile(r"\w[ .\-_*]\w[ .\-_*]\w[ .\-_*]\w[ .\-_*]\w")
_SPACED = regex.compile(r"(?<!\S)(?:\S[ .\-_*]){5,}\S(?!\S)")
_SPACED_MARK = regex.compile(r"(?<=\S)[.\-_*](?=\S)")
# Instruction words in rot13 (group 1) or written backwards (group 2).
_HINTS = regex.compile(
    r"\b(?:(vtaber|qvfertneq|sbetrg|bireevqr|vafgehpgvbaf|cebzcg|flfgrz)"
    r"|(erongi|dragersid|tegrof|snoitcurtsni|tpmorp|metsys|selur|laever))\b",
    regex.IGNORECASE,
)


def normalise(text: str) -> tuple[str, list[int] | None]:
    """The text rules see, and for each of its characters the index in ``text`` (None: the same)."""
    if text.isascii():
        return text, None
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        if ord(ch) in _DROP:
            continue
        norm = unicodedata.normalize("NFKC", ch).translate(_CONFUSABLES) if ord(ch) > 127 else ch
        out.append(norm)
        index.extend([i] * len(norm))
    return "".join(out), index


def _printable_ratio(data: bytes) -> float:
    if not data:
        return 0.0
    return sum(32 <= b < 127 or b in (9, 10, 13) for b in data) / len(data)


def _decode_runs(text: str) -> list[tuple[int, int, str]]:
    """Base64 and hex runs that decode to readable text: (start, end, decoded)."""
    out = []
    for m in _BASE64_RUN.finditer(text):
        raw = m.group()
        try:
            data = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_" if "-" in raw or "_" in raw else None)
        except (binascii.Error, ValueError):
            continue
        if len(data) >= 12 and _printable_ratio(data) > 0.9:
            out.append((m.start(), m.end(), data.decode("ascii", "ignore")))
    for m in _HEX_RUN.finditer(text):
        try:
            data = bytes.fromhex(m.group().replace(" ", "").replace(":", ""))
        except ValueError:
            continue
        if _printable_ratio(data) > 0.9:
            out.append((m.start(), m.end(), data.decode("ascii", "ignore")))
    return out


def _unspace(m: regex.Match[str]) -> str:
    """A run of letters spaced out: "d i s r e g a r d" joined; when its letters are joined by hyphens, dots,
    underscores or stars ("i-g-n-o-r-e a-l-l"), those go and the spaces stay, as word breaks."""
    run = m.group()
    if _SPACED_MARK.search(run):
        return _SPACED_MARK.sub("", run)
    return regex.sub(r"(?<=\S) (?=\S)", "", run)


class InjectionScanner:
    name = "injection"
    spans = True

    def _rules(self, text: str) -> list[Match]:
        lowered = gate_text(text)  # a rule whose trigger words are all absent is skipped
        return [
            Match(kind, m.start(), m.end(), score)
            for kind, score, rx in (_RULES if lowered is not None else _RULES + _NON_LATIN_RULES)
            if gate_for(rx).may_match(lowered)
            for m in rx.finditer(text)
        ]

    def scan(self, text: str) -> list[Match]:
        norm, index = normalise(text)
        found = self._rules(norm)
        if index is not None:
            n = len(text)
            found = [
                Match(f.type, index[f.start], index[f.end] if f.end < len(index) else n, f.score) for f in found
            ]
            found.extend(
                Match("injection.homoglyph", m.start(), m.end(), 0.6) for m in _MIXED_SCRIPT_WORD.finditer(text)
            )
            found.extend(
                Match("injection.invisible_chars", m.start(), m.end(), 0.8) for m in _ZERO_WIDTH.finditer(text)
            )
            found.extend(Match("injection.bidi_control", m.start(), m.end(), 0.85) for m in _BIDI.finditer(text))
            for m in _TAGS.finditer(text):
                # Unicode tag characters mirror ASCII and render as nothing: "ASCII smuggling".
                hidden = "".join(chr(ord(c) - 0xE0000) for c in m.group() if 0x20 <= ord(c) - 0xE0000 < 0x7F)
                score = 0.98 if any(r.type in _SEMANTIC_KINDS for r in self._rules(hidden)) else 0.9
                found.append(Match("injection.tag_smuggling", m.start(), m.end(), score))
        # Encoded payloads: decode base64 / hex runs and rot13 the text; a hidden instruction is flagged
        # at the encoded span.
        for start, end, decoded in _decode_runs(norm):
            if any(r.type in _SEMANTIC_KINDS for r in self._rules(decoded)):
                s, e = (start, end) if index is None else (index[start], index[end - 1] + 1)
                found.append(Match("injection.encoded_payload", s, e, 0.95))
        hints = _HINTS.findall(norm) if gate_for(_HINTS).may_match(gate_text(norm)) else []
        found.extend(self._obfuscated(norm, index, reversed_hint=any(rev for _, rev in hints)))
        if any(rot for rot, _ in hints):
            rotated = codecs.encode(norm, "rot13")
            for r in self._rules(rotated):
                if r.type in _SEMANTIC_KINDS:
                    s, e = (r.start, r.end) if index is None else (index[r.start], index[r.end - 1] + 1)
                    found.append(Match("injection.encoded_payload", s, e, 0.95))
        return found

    def _obfuscated(self, norm: str, index: list[int] | None, reversed_hint: bool) -> list[Match]:
        """An instruction override, prompt leak or jailbreak in l33t, spaced-out or reversed letters: flagged over
        the whole text (the decoded view's offsets do not map back)."""
        views = []
        if _LEET_GATE.search(norm) and len(_LEET_WORD.findall(norm)) >= 2:
            views.append(_LEET_WORD.sub(lambda m: m.group().translate(_LEET), norm))
        if _SPACED_GATE.search(norm) and _SPACED.search(norm):
            views.append(_SPACED.sub(_unspace, norm))
        if reversed_hint:
            views.append(norm[::-1])
        n = len(index) if index is not None else len(norm)
        for view in views:
            if any(r.type in _SEMANTIC_KINDS for r in self._rules(view)):
                return [Match("injection.obfuscated", 0, max(index[-1] + 1, n) if index else n, 0.9)]
        return []

    def hold(self, text: str, start: int = 0) -> int:
        # Output is only logged for injection by default; still, hold a chat-template token in the making.
        return partial_hold([_ROLE_SPOOF], text, start)


def corroborate(matches: list[Match], classifier: bool = True) -> list[Match]:
    """``matches`` of one text with each role_spoof match raised to :data:`ROLE_SPOOF_CORROBORATED` when the
    learned classifier (``injection.classifier``) scored the text at least :data:`CORROBORATION` — or always when
    ``classifier`` is False (the guard runs without it, and the rules decide alone).

    On the development sets this kept every attack the rule had caught (the classifier finds them at least
    that likely) while a template token in a benign text no longer blocks on its own."""
    support = max((m.score for m in matches if m.type == "injection.classifier"), default=0.0)
    if classifier and support < CORROBORATION:
        return matches
    return [Match(m.type, m.start, m.end, max(m.score, ROLE_SPOOF_CORROBORATED)) if m.type == "injection.role_spoof"
            else m for m in matches]
