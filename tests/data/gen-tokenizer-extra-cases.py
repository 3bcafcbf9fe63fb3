"""Regenerates the extra tokenizer cases in this folder with Hugging Face `tokenizers` (0.23.3 was used):
llama3-extra-cases.jsonl, small-bpe-extra-cases.jsonl and small-bpe-gpt2-cases.jsonl (the small
vocabulary with the GPT-2 ByteLevel regex). Reads the fixtures from ../shared/fixtures/tokenizer/;
run from this folder: python3 gen-tokenizer-extra-cases.py"""
import json, random
from tokenizers import Tokenizer
random.seed(20261122)
frags = ["Hello", " world", "  ", "   ", "\n", "\n\n", "\r\n", "\t", " \n ", "'s", "'S", "'ll", "'LL", "'ve", "'re", "'d", "'m", "'t", "'ſ", "'x",
 "123", "4567", " 89", "1,000,000", "3.14159", "٣٤٥٦٧", "①②③", "Ⅻ", "２０２６", "é", "ñ", "ß", "日本語", "中文，标点。", "한국어", "Привет", "مرحبا", "שלום", "नमस्ते", "ﬁ",
 "🚀", "👍🏽", "👨‍👩‍👧‍👦", "\u200b", "\u00a0", "\u3000", "\u2028", "\u0085", "\u000b", "\u000c", "\u0000", "\u007f", "!!!", "...", "?!", " !", " ...\n", "$", "#", "<|", "|>",
 "<|eot_id|>", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id", "<|reserved_special_token_5|>", "{", "}", "()", "\"", "`code`", "C:\\path", "http://x.y/z?q=1",
 "snake_case", "CamelCase", "UPPER", "x", "a", " a", "aaaaaaaaaaaaaaaa", "          ", "\t\t", " \t\n", "-", "--", "=>", "::", "<<", ">>", "&&", "||"]
texts = set()
out = []
def add(t):
    if t not in texts:
        texts.add(t); out.append(t)
for f in frags: add(f)
for _ in range(400):
    k = random.randint(2, 12)
    add("".join(random.choice(frags) for _ in range(k)))
# random unicode strings
for _ in range(100):
    cs = []
    for _ in range(random.randint(1, 20)):
        r = random.random()
        if r < 0.5: cs.append(chr(random.randint(0x20, 0x7e)))
        elif r < 0.6: cs.append(random.choice(" \n\t\r"))
        elif r < 0.9: cs.append(chr(random.randint(0xa0, 0x2fff)))
        else: cs.append(chr(random.choice([random.randint(0x3000, 0xd7ff), random.randint(0xe000, 0xfffd), random.randint(0x10000, 0x1faff)])))
    add("".join(cs))
for name, path, n in [("llama3", "../../../shared/fixtures/tokenizer/llama3-tokenizer.json", None), ("small-bpe", "../../../shared/fixtures/tokenizer/small-bpe-tokenizer.json", 150)]:
    t = Tokenizer.from_file(path)
    with open(f"{name}-extra-cases.jsonl", "w") as f:
        for s in (out if n is None else out[:n]):
            f.write(json.dumps({"text": s, "ids": t.encode(s, add_special_tokens=False).ids}, ensure_ascii=False) + "\n")
# GPT-2 regex variant of small-bpe
j = json.load(open("../../../shared/fixtures/tokenizer/small-bpe-tokenizer.json"))
j["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
t = Tokenizer.from_str(json.dumps(j))
with open("small-bpe-gpt2-cases.jsonl", "w") as f:
    for s in out[:200]:
        f.write(json.dumps({"text": s, "ids": t.encode(s, add_special_tokens=False).ids}, ensure_ascii=False) + "\n")
