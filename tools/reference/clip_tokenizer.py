"""Write a transformers-compatible CLIP BPE tokenizer folder from open_clip's merges file.

The vocabulary is built exactly as OpenAI CLIP builds it:
    256 byte characters (bytes_to_unicode order), the same 256 + "</w>",
    then every merge joined ("a" "b" -> "ab"), then <|startoftext|>, <|endoftext|>.
With all 48894 merges that is 49408 tokens. `num_merges=K` keeps only the first K merges
(vocab = 512 + K + 2) for tiny test models.

Files written: vocab.json, merges.txt ("#version: 0.2" header, one merge per line),
tokenizer_config.json, special_tokens_map.json. model_max_length 77; bos <|startoftext|>,
eos = unk = pad = <|endoftext|>.

Usage:
    python clip_tokenizer.py OUT_DIR [--num-merges K]
    python clip_tokenizer.py --fixtures  # writes Tests/Fixtures/clip-tokenizer (full vocab + cases.json)
"""

from __future__ import annotations

import argparse
import gzip
import html
import importlib.util
import json
import os
import sys
from functools import lru_cache

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
FULL_MERGES = 49152 - 256 - 2  # 48894, as in CLIP's SimpleTokenizer


def default_bpe_path() -> str:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("open_clip not installed: pip install --no-deps open-clip-torch")
    return os.path.join(list(spec.submodule_search_locations)[0], "bpe_simple_vocab_16e6.txt.gz")


@lru_cache()
def bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def load_merges(bpe_path: str | None = None, num_merges: int | None = None) -> list[tuple[str, str]]:
    lines = gzip.open(bpe_path or default_bpe_path()).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : FULL_MERGES + 1]]
    assert len(merges) == FULL_MERGES and all(len(m) == 2 for m in merges)
    if num_merges is not None:
        if not 0 <= num_merges <= FULL_MERGES:
            raise ValueError(f"num_merges must be in [0, {FULL_MERGES}]")
        merges = merges[:num_merges]
    return merges


def build_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += [BOS, EOS]
    enc = {tok: i for i, tok in enumerate(vocab)}
    assert len(enc) == len(vocab), "duplicate vocab entries"
    return enc


def write_tokenizer(out_dir: str, num_merges: int | None = None, bpe_path: str | None = None) -> int:
    """Write the tokenizer folder; returns the vocabulary size."""
    merges = load_merges(bpe_path, num_merges)
    vocab = build_vocab(merges)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as fh:
        json.dump(vocab, fh, ensure_ascii=False)
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as fh:
        fh.write("#version: 0.2\n")
        for a, b in merges:
            fh.write(f"{a} {b}\n")
    special = {
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
    }
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "do_lower_case": True,
        "add_prefix_space": False,
        "errors": "replace",
        "clean_up_tokenization_spaces": False,
        **special,
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as fh:
        json.dump(config, fh, indent=2, sort_keys=True)
        fh.write("\n")
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as fh:
        json.dump(special, fh, indent=2, sort_keys=True)
        fh.write("\n")
    return len(vocab)


# --------------------------------------------------------------------------- test cases
CASES = [
    "",
    "a",
    "A cat",
    "a photo of a cat",
    "A PHOTO OF A CAT",
    "A Photo Of A Cat",
    "  leading spaces",
    "trailing spaces   ",
    "   both   ",
    "multiple    spaces   between",
    "tabs\tand\t\ttabs",
    "new\nlines\n\nand\r\ncarriage returns",
    "\n\t mixed \t\n whitespace \n",
    "Hello, world!",
    "wow!!! really??? yes...",
    "(parentheses) [brackets] {braces} <angles>",
    "a--b -- c---d",
    "it's a dog's life",
    "don't won't can't",
    "we're they've I'm you'll he'd",
    "IT'S DON'T WE'RE THEY'VE I'M YOU'LL HE'D",
    "It'S mIxEd'Ll",
    "rock 'n' roll, 'quoted', o'clock, ma'am",
    "the dogs' bowls and James' car",
    "'s 't 're alone",
    "12345",
    "in 2023, 3.14 and 1,000,000 people",
    "4k 60fps 1080p",
    "café naïve résumé",
    "über straße Müller ÜBER",
    "CAFÉ in upper case",
    "e\u0301 combining accent vs é",
    "日本語のテキスト",
    "中文 混合 English text",
    "한국어 문장",
    "emoji 🐱🐶 and 🚀!",
    "flags 🇯🇵 and family 👨‍👩‍👧",
    "a photo<|endoftext|>of a cat",
    "<|startoftext|>already wrapped<|endoftext|>",
    "state-of-the-art text-to-video",
    "well-known e-mail re-entry",
    "snake_case and camelCase and kebab-case",
    "email@example.com https://example.com/path?q=1&x=2",
    "tom &amp; jerry &lt;3",
    "price: $100 + 50% off #sale @home ~ ^ * \\ |",
    "ä ö ü ß à ç ñ ø å",
    "Ελληνικά and Русский текст",
    "x" * 300,
    "an astronaut riding a horse on mars, " * 12,
    "a very long prompt " + " ".join(f"word{i}" for i in range(100)),
    "\u00a0non-breaking\u00a0space and\u2003em space",
    "zero\u200bwidth space",
    "fullwidth ＡＢＣ１２３",
]


def _reference_clip_encode(text: str, encoder: dict[str, int], ranks: dict, use_ftfy: bool) -> list[int]:
    """OpenAI CLIP's SimpleTokenizer.encode (ftfy + html.unescape x2 + strip, whitespace
    collapse, lower-case, regex split, byte-level BPE)."""
    import regex as re

    if use_ftfy:
        import ftfy

        text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    text = " ".join(text.split()).strip().lower()
    pat = re.compile(
        r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
        re.IGNORECASE,
    )
    byte_enc = bytes_to_unicode()
    out = []
    for token in re.findall(pat, text):
        if token in (BOS, EOS):
            out.append(encoder[token])
            continue
        token = "".join(byte_enc[b] for b in token.encode("utf-8"))
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
            if best not in ranks:
                break
            new, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == best[0] and word[i + 1] == best[1]:
                    new.append(word[i] + word[i + 1])
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = tuple(new)
        out.extend(encoder[w] for w in word)
    return out


def _pad77(ids: list[int], bos: int, eos: int, pad: int) -> list[int]:
    ids = [bos] + ids[:75] + [eos]
    return ids + [pad] * (77 - len(ids))


def write_fixture_cases(out_dir: str) -> None:
    import transformers
    from transformers import CLIPTokenizer

    write_tokenizer(out_dir)
    tok = CLIPTokenizer.from_pretrained(out_dir)
    merges = load_merges()
    encoder = build_vocab(merges)
    ranks = {m: i for i, m in enumerate(merges)}
    try:
        import ftfy  # noqa: F401

        have_ftfy = True
    except ImportError:
        have_ftfy = False

    # Is there a second (slow / fast) class in this transformers version?
    other = None
    for name in ("CLIPTokenizerFast", "CLIPTokenizerSlow"):
        cls = getattr(transformers, name, None)
        if cls is not None and cls is not type(tok):
            try:
                other = cls.from_pretrained(out_dir)
            except Exception as exc:  # pragma: no cover - informative only
                print(f"note: {name} failed to load: {exc}", file=sys.stderr)
    cases = []
    disagreements_other = 0
    disagreements_openai = 0
    for text in CASES:
        enc = tok(text, padding="max_length", max_length=77, truncation=True)
        ids = list(enc["input_ids"])
        assert len(ids) == 77
        case = {"text": text, "ids": ids}
        n_real = sum(enc["attention_mask"])
        case["num_tokens"] = n_real  # bos + content + eos, before padding
        if other is not None:
            o = list(other(text, padding="max_length", max_length=77, truncation=True)["input_ids"])
            if o != ids:
                case["ids_" + type(other).__name__] = o
                disagreements_other += 1
        ref = _pad77(_reference_clip_encode(text, encoder, ranks, have_ftfy), encoder[BOS], encoder[EOS],
                     tok.pad_token_id)
        if ref != ids:
            case["ids_openai_clip"] = ref
            disagreements_openai += 1
        cases.append(case)
    meta = {
        "tokenizer_class": f"{type(tok).__module__}.{type(tok).__name__}",
        "tokenizer_backend": type(tok).__mro__[1].__name__,
        "transformers_version": transformers.__version__,
        "call": 'CLIPTokenizer.from_pretrained(dir)(text, padding="max_length", max_length=77, truncation=True)',
        "vocab_size": len(encoder),
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
        "other_class": type(other).__name__ if other is not None else None,
        "other_class_disagreements": disagreements_other,
        "openai_clip_reference": (
            "ids_openai_clip (present only where it differs from ids) = OpenAI CLIP SimpleTokenizer "
            f"(ftfy={'yes' if have_ftfy else 'no'}, html.unescape twice, strip, whitespace collapse, lower) "
            "+ same bos/eos/pad/truncation; informative only, the Swift side follows `ids`."
        ),
        "openai_clip_disagreements": disagreements_openai,
    }
    with open(os.path.join(out_dir, "cases.json"), "w", encoding="utf-8") as fh:
        json.dump({"meta": meta, "cases": cases}, fh, ensure_ascii=False, indent=1)
        fh.write("\n")
    print(json.dumps(meta, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", nargs="?")
    ap.add_argument("--num-merges", type=int, default=None)
    ap.add_argument("--fixtures", action="store_true",
                    help="write Tests/Fixtures/clip-tokenizer (full vocab) and its cases.json")
    args = ap.parse_args()
    if args.fixtures:
        write_fixture_cases(args.out_dir or os.path.join(REPO_ROOT, "Tests", "Fixtures", "clip-tokenizer"))
    elif args.out_dir:
        n = write_tokenizer(args.out_dir, args.num_merges)
        print(f"wrote {args.out_dir} (vocab {n})")
    else:
        ap.error("give OUT_DIR or --fixtures")


if __name__ == "__main__":
    main()
