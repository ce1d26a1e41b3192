#!/usr/bin/env python3
"""Writes datasets/quickstart.parquet: the quickstart job's input.

requires: pyarrow==18.1.0 (python3 -m pip install pyarrow==18.1.0)
run:      python3 datasets/make_quickstart.py

A few dozen varied prompts (plain text and chat, with a system message and
multi-turn history), plus deliberately bad rows whose `topic` names the fault,
so the job shows both answers and typed error rows. Deterministic output.
"""
import pathlib

import pyarrow as pa
import pyarrow.parquet as pq

ROWS = []


def add(id_, source, topic, prompt=None, messages=None, max_new_tokens=None):
    ROWS.append(dict(id=id_, prompt=prompt, messages=messages,
                     max_new_tokens=max_new_tokens, source=source, topic=topic))


def user(text, system=None):
    msgs = [] if system is None else [{"role": "system", "content": system}]
    return msgs + [{"role": "user", "content": text}]


# Plain-text prompts (sent as one user turn through the chat template).
add("q-001", "factual", "geography", "What is the capital of France?")
add("q-002", "factual", "science", "Why is the sky blue? Answer in two sentences.")
add("q-003", "factual", "history", "Who wrote the play Romeo and Juliet?")
add("q-004", "factual", "math", "What is 12 multiplied by 7?")
add("q-005", "explain", "science", "Explain photosynthesis to a ten-year-old.")
add("q-006", "explain", "computing", "What is the difference between RAM and a hard disk?")
add("q-007", "explain", "cooking", "How do I boil an egg so the yolk stays soft?")
add("q-008", "list", "travel", "List three things to pack for a beach holiday.")
add("q-009", "creative", "story", "Write a two-sentence story about a cat who learns to fly.")
add("q-010", "creative", "poem", "Write a short poem about autumn leaves.")
add("q-011", "coding", "python", "Write a Python function that returns the square of a number.")
add("q-012", "coding", "sql", "Write a SQL query that counts the rows of a table named users.")
add("q-013", "summarize", "summary",
    "Summarize in one sentence: The Parquet format stores data by column, which lets "
    "readers skip the columns they do not need and compress similar values together. "
    "It is widely used in data lakes and read by engines such as Spark and DuckDB.")
add("q-014", "factual", "geography", "What is the largest ocean on Earth?", max_new_tokens=24)
add("q-015", "explain", "health", "Give two tips for sleeping better.")
add("q-016", "factual", "language", "Translate 'good morning' into Spanish.")

# Chat rows: system messages, multi-turn history.
add("c-001", "chat", "greeting", messages=user("Hello! Who are you?"))
add("c-002", "chat", "persona", messages=user(
    "What should I name my new puppy?", system="You are a cheerful assistant. Answer briefly."))
add("c-003", "chat", "multi-turn", messages=[
    {"role": "user", "content": "I am planning a picnic."},
    {"role": "assistant", "content": "That sounds lovely! Where are you going?"},
    {"role": "user", "content": "To the park. What food should I bring?"},
])
add("c-004", "chat", "coding", messages=user(
    "How do I reverse a list in Python?", system="You are a concise programming tutor."))
add("c-005", "chat", "math", messages=[
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "2 + 2 = 4."},
    {"role": "user", "content": "And 4 + 4?"},
])
add("c-006", "chat", "advice", messages=user("Give me one tip for learning a new language."))
add("c-007", "chat", "science", messages=user("What do bees make?"), max_new_tokens=16)
add("c-008", "chat", "weather", messages=user("What is a rainbow made of?"))
# A chat row whose `prompt` is also set: the messages win.
add("c-009", "chat", "precedence", prompt="(ignored because messages are set)",
    messages=user("Name a primary colour."))
add("c-010", "chat", "long-context", messages=user(
    "Here is a note: " + "The library opens at nine and closes at five. " * 20 +
    "When does the library open?"))

# Deliberately bad rows: each becomes an error row with a typed error_kind.
add("bad-001", "bad", "null prompt and null messages")
add("bad-002", "bad", "empty prompt", prompt="")
add("bad-003", "bad", "whitespace-only prompt", prompt="   \n\t ")
add("bad-004", "bad", "message with null content",
    messages=[{"role": "user", "content": None}])
add("bad-005", "bad", "message with unknown role",
    messages=[{"role": "wizard", "content": "Cast a spell."}])
add("q-001", "bad", "duplicate id", "This row reuses the id q-001.")
add("bad-006", "bad", "prompt longer than the context",
    "Please summarise this. " + "All work and no play makes Jack a dull boy. " * 1000)
add("bad-007", "bad", "negative max_new_tokens", "Say hi.", max_new_tokens=-5)

message = pa.struct([("role", pa.string()), ("content", pa.string())])
schema = pa.schema([
    ("id", pa.string()),
    ("prompt", pa.string()),
    ("messages", pa.list_(message)),
    ("max_new_tokens", pa.int32()),
    ("source", pa.string()),
    ("topic", pa.string()),
])
table = pa.Table.from_pylist(ROWS, schema=schema)
out = pathlib.Path(__file__).with_name("quickstart.parquet")
pq.write_table(table, out, compression="zstd")
print(f"wrote {out} ({table.num_rows} rows)")
