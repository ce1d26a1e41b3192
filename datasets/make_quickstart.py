# requires: pyarrow==18.1.0
"""Writes datasets/quickstart.parquet, the input of jobs/quickstart.yaml.

A small, varied set of prompts for the default SmolLM2-135M model: short
factual questions, explanations, chat rows (some with a system message and
multi-turn history), plain-text completions, small coding asks and a
summarization, plus deliberately bad rows whose `topic` names the fault
(each must become an error row, or be handled, without stopping the job).

Columns: id (string), prompt (string, nullable), messages
(list<struct<role: string, content: string>>, nullable), max_new_tokens
(int32, nullable; a per-row override), source (string), topic (string).

The output is deterministic: same pyarrow version, same bytes.
Run from the repository root:  python3 datasets/make_quickstart.py
"""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parent / "quickstart.parquet"

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("prompt", pa.string()),
        ("messages", pa.list_(MESSAGE)),
        ("max_new_tokens", pa.int32()),
        ("source", pa.string()),
        ("topic", pa.string()),
    ]
)


def msg(role, content):
    return {"role": role, "content": content}


SUMMARY_TEXT = (
    "The Parquet file format stores data by column rather than by row. Values of one "
    "column sit next to each other on disk, which makes them compress well, because "
    "neighbouring values tend to be similar, and lets a query read only the columns it "
    "needs. Files are split into row groups, each holding a slice of the rows for every "
    "column, and a footer at the end of the file records the schema and where every "
    "column chunk starts, so a reader can plan its work before touching any data."
)

# About 49k characters: far beyond the model's 8192-token context.
OVERLONG = "The quick brown fox jumps over the lazy dog. " * 1100

# (prompt, messages, max_new_tokens, source, topic); ids are assigned in order.
GOOD = [
    ("What is the capital city of France? Answer in one sentence.", None, 16, "faq", "geography"),
    ("How many days are there in a leap year?", None, 16, "faq", "calendar"),
    ("What is the boiling point of water at sea level in Celsius?", None, 16, "faq", "physics"),
    ("Who wrote the play Romeo and Juliet?", None, 16, "faq", "literature"),
    ("What is the largest planet in our solar system?", None, 16, "faq", "astronomy"),
    ("What gas do plants absorb from the air?", None, 16, "faq", "biology"),
    ("Explain in two sentences why the sky is blue.", None, None, "tutor", "physics"),
    ("Explain what a hash function is to a beginner.", None, None, "tutor", "computing"),
    ("Why do we have seasons on Earth?", None, None, "tutor", "astronomy"),
    ("What is the difference between weather and climate?", None, None, "tutor", "geography"),
    ("Give three tips for getting better sleep.", None, None, "tutor", "health"),
    (
        None,
        [
            msg("system", "You are a friendly travel assistant. Answer briefly."),
            msg("user", "I have one day in Rome. What should I see?"),
        ],
        None,
        "chat",
        "travel",
    ),
    (
        None,
        [
            msg("system", "You are a patient math tutor."),
            msg("user", "What is 12 times 11?"),
            msg("assistant", "12 times 11 is 132."),
            msg("user", "And what is 132 divided by 4?"),
        ],
        24,
        "chat",
        "arithmetic",
    ),
    (
        None,
        [
            msg("user", "Can you suggest a name for a grey cat?"),
            msg("assistant", "How about Smokey?"),
            msg("user", "Nice. Give me two more ideas."),
        ],
        None,
        "chat",
        "pets",
    ),
    (None, [msg("user", "Say hello in French, Spanish and German.")], 32, "chat", "languages"),
    (
        None,
        [
            msg("system", "You answer with a single word."),
            msg("user", "What color is a ripe banana?"),
        ],
        8,
        "chat",
        "colors",
    ),
    # Messages win over the prompt when both are set.
    (
        "This prompt is ignored because the row has messages.",
        [msg("user", "Name one primary color.")],
        16,
        "chat",
        "messages_and_prompt",
    ),
    ("Once upon a time, in a small village by the sea,", None, None, "writing", "story_completion"),
    ("The three most important things to remember when cooking pasta are", None, None, "writing", "text_completion"),
    ("Write a haiku about autumn leaves.", None, None, "writing", "poetry"),
    ("Write a short, polite email declining a meeting invitation.", None, None, "writing", "email"),
    ("Write a Python function that returns the square of a number.", None, 64, "code", "python"),
    ("How do I reverse a list in Python?", None, None, "code", "python"),
    ("Write a SQL query that counts the rows of a table named users.", None, None, "code", "sql"),
    ("What does the Unix command `ls -l` show?", None, None, "code", "shell"),
    (
        "Summarize the following paragraph in one sentence.\n\n" + SUMMARY_TEXT,
        None,
        None,
        "summaries",
        "summarization",
    ),
    ("Translate 'good morning' into Italian.", None, 16, "faq", "translation"),
    ("List the first five prime numbers.", None, 24, "faq", "math"),
]

# Each bad row's topic names its fault; `None` for the id means "a fresh id".
BAD = [
    (None, None, None, "faults", "null_prompt_and_null_messages", None),
    ("", None, None, "faults", "empty_prompt", None),
    ("   \n\t  ", None, None, "faults", "whitespace_only_prompt", None),
    (
        None,
        [msg("system", "Be brief."), {"role": "user", "content": None}],
        None,
        "faults",
        "message_with_null_content",
        None,
    ),
    (None, [msg("wizard", "Cast a spell on this prompt.")], None, "faults", "message_with_unknown_role_wizard", None),
    ("What is the capital of Italy?", None, 16, "faults", "duplicate_id", "qs-001"),
    (OVERLONG, None, None, "faults", "prompt_longer_than_context", None),
    ("What is two plus two?", None, -5, "faults", "negative_max_new_tokens", None),
]


def rows():
    out = []
    for prompt, messages, max_new, source, topic in GOOD:
        out.append((prompt, messages, max_new, source, topic, None))
    out.extend(BAD)
    for n, (prompt, messages, max_new, source, topic, fixed_id) in enumerate(out, start=1):
        yield {
            "id": fixed_id or f"qs-{n:03d}",
            "prompt": prompt,
            "messages": messages,
            "max_new_tokens": max_new,
            "source": source,
            "topic": topic,
        }


def main():
    table = pa.Table.from_pylist(list(rows()), schema=SCHEMA)
    pq.write_table(table, OUT, compression="zstd", row_group_size=16)
    print(f"wrote {table.num_rows} rows to {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
