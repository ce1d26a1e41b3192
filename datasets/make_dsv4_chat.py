# requires: pyarrow==18.1.0
"""Writes datasets/dsv4_chat.parquet, the input of jobs/dsv4_chat.yaml.

OpenAI-style chats for a DeepSeek-V4 checkpoint, each row in one of the three
reasoning modes (the `reasoning` column is the per-row override of the job's
`generation.reasoning`): single turns, a system prompt, a multi-turn history
with an earlier assistant answer, plus one row whose mode is not a mode (it
must become an error row, the job going on).

Columns: id (string), messages (list<struct<role: string, content: string>>),
reasoning (string, nullable: null takes the job's mode), topic (string).

The output is deterministic: same pyarrow version, same bytes.
Run from the repository root:  python3 datasets/make_dsv4_chat.py
"""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parent / "dsv4_chat.parquet"

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("messages", pa.list_(MESSAGE)),
        ("reasoning", pa.string()),
        ("topic", pa.string()),
    ]
)


def msg(role, content):
    return {"role": role, "content": content}


QUESTIONS = [
    "What is the capital of France?",
    "Explain in one sentence why the sky is blue.",
    "Write a haiku about compressed attention.",
    "How many bytes are in a kibibyte?",
]

ROWS = []
for i, q in enumerate(QUESTIONS):
    for mode in ["non_think", "think_high", "think_max", None]:
        ROWS.append(
            {
                "id": f"q{i}-{mode or 'job'}",
                "messages": [msg("user", q)],
                "reasoning": mode,
                "topic": "single_turn",
            }
        )
ROWS.append(
    {
        "id": "system-think",
        "messages": [msg("system", "You are a terse assistant."), msg("user", "Name a prime above 100.")],
        "reasoning": "think_high",
        "topic": "system_prompt",
    }
)
ROWS.append(
    {
        "id": "multi-turn",
        "messages": [
            msg("user", "Hi"),
            msg("assistant", "Hello! How can I help?"),
            msg("user", "Again, please."),
        ],
        "reasoning": "non_think",
        "topic": "multi_turn",
    }
)
ROWS.append(
    {
        "id": "bad-mode",
        "messages": [msg("user", "This row names no real reasoning mode.")],
        "reasoning": "think_harder",
        "topic": "bad_reasoning_mode",
    }
)


def main():
    table = pa.Table.from_pylist(ROWS, schema=SCHEMA)
    pq.write_table(table, OUT, compression="zstd")
    print(f"wrote {OUT} ({table.num_rows} rows)")


if __name__ == "__main__":
    main()
