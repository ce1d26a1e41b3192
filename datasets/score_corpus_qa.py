# requires: duckdb==2.0.1
"""Scores the output of a corpus-QA job (jobs/corpus_qa.yaml, or any input
written by datasets/make_corpus_qa.py with pass_through [doc_id, task,
expected_answer]).

    python3 datasets/score_corpus_qa.py OUTPUT_DIR

Reads OUTPUT_DIR/data/**/*.parquet with DuckDB and prints, per task, the
number of rows, ok and error rows, and the accuracy over the scorable ok
rows:

- needle:   correct when the expected 7-digit number occurs in output_text;
- vartrack: correct when every expected variable name (expected_answer is
            the names separated by spaces) occurs in output_text;
- summary:  not scored (expected_answer is null).

Accuracy is over all rows of the task, error rows counting as wrong;
"acc(ok)" is over the ok rows only.
"""

import sys
from pathlib import Path

import duckdb


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: score_corpus_qa.py OUTPUT_DIR")
    data = Path(sys.argv[1]) / "data"
    if not data.is_dir():
        sys.exit(f"score_corpus_qa: {data} is not a folder")
    con = duckdb.connect()
    glob = str(data / "**" / "*.parquet").replace("'", "''")
    con.execute(f"CREATE VIEW out AS SELECT * FROM read_parquet('{glob}')")
    # One row per input row: correct is NULL where there is nothing to check.
    con.execute(
        """
        CREATE VIEW scored AS
        SELECT task, status,
          CASE
            WHEN expected_answer IS NULL THEN NULL
            WHEN status <> 'ok' OR output_text IS NULL THEN false
            WHEN task = 'vartrack' THEN list_bool_and(
                list_transform(string_split(expected_answer, ' '), lambda n: contains(output_text, n)))
            ELSE contains(output_text, expected_answer)
          END AS correct
        FROM out
        """
    )
    rows = con.execute(
        """
        SELECT task, count(*) AS n,
               count(*) FILTER (WHERE status = 'ok') AS ok,
               count(*) FILTER (WHERE status <> 'ok') AS err,
               count(correct) AS scorable,
               count(*) FILTER (WHERE correct) AS right,
               count(correct) FILTER (WHERE status = 'ok') AS scorable_ok
        FROM scored GROUP BY task ORDER BY task
        """
    ).fetchall()
    print(f"{'task':<10}{'rows':>6}{'ok':>6}{'error':>7}{'correct':>9}{'acc':>8}{'acc(ok)':>9}")
    tot = [0, 0, 0, 0, 0]
    for task, n, ok, err, scorable, right, scorable_ok in rows:
        acc = f"{right / scorable:.1%}" if scorable else "-"
        acc_ok = f"{right / scorable_ok:.1%}" if scorable_ok else "-"
        print(f"{task:<10}{n:>6}{ok:>6}{err:>7}{right if scorable else '-':>9}{acc:>8}{acc_ok:>9}")
        for i, v in enumerate((n, ok, err, scorable, right)):
            tot[i] += v
    n, ok, err, scorable, right = tot
    acc = f"{right / scorable:.1%}" if scorable else "-"
    print(f"{'all':<10}{n:>6}{ok:>6}{err:>7}{right:>9}{acc:>8}")
    errors = con.execute(
        "SELECT error_kind, count(*) FROM out WHERE status <> 'ok' GROUP BY 1 ORDER BY 2 DESC"
    ).fetchall()
    for kind, count in errors:
        print(f"  error {kind}: {count}")


if __name__ == "__main__":
    main()
