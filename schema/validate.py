#!/usr/bin/env python3
"""Validate agentwatch NDJSON output against schema/agentwatch-record.schema.json.

Usage: python3 schema/validate.py FILE...

Every line of every FILE must be one JSON object that the schema accepts. Within a file, seq
must be strictly increasing; a daemon restart appending to the same file starts a new stream,
which is accepted only at an agent.start record with seq 1. Prints one `FILE:LINE: message`
line per error, then `validated N records, M errors`; exits 1 when there is any error.

Lines are read as bytes and decoded by json.loads, so the \\udcXX escapes the daemon writes
for bytes that are not UTF-8 (lone surrogates) are accepted.
"""

import json
import sys
from pathlib import Path

from jsonschema import Draft202012Validator

SCHEMA_PATH = Path(__file__).resolve().parent / "agentwatch-record.schema.json"
MAX_MESSAGE = 400


class DuplicateKey(ValueError):
    pass


def _object_pairs(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise DuplicateKey(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _where(error):
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _message(error):
    if error.validator == "not" and error.validator_value == {}:
        return "not allowed in this record (type) or with these other fields"
    return error.message


def _short(text):
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."


def validate_file(name, validator, report):
    """Validates one file; returns the number of records read (lines that parsed)."""
    records = 0
    last_seq = None
    try:
        f = open(name, "rb")
    except OSError as e:
        report(name, 0, f"cannot open: {e.strerror}")
        return 0
    with f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                report(name, lineno, "empty line")
                continue
            try:
                record = json.loads(line, object_pairs_hook=_object_pairs, parse_constant=_reject_constant)
            except (ValueError, UnicodeDecodeError) as e:
                report(name, lineno, f"not valid JSON: {e}")
                continue
            records += 1
            errors = sorted(validator.iter_errors(record), key=lambda e: (list(map(str, e.absolute_path)), e.message))
            for error in errors:
                where, message = _where(error), _message(error)
                report(name, lineno, _short(f"{where}: {message}" if where else message))
            seq = record.get("seq") if isinstance(record, dict) else None
            if type(seq) is int:
                restart = record.get("type") == "agent.start" and seq == 1
                if last_seq is not None and seq <= last_seq and not restart:
                    report(name, lineno, f"seq: {seq} does not follow {last_seq} (seq must be strictly increasing)")
                last_seq = seq
    return records


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print("usage: python3 schema/validate.py FILE...", file=sys.stderr)
        return 2
    # Messages may quote strings holding lone surrogates: print them escaped.
    sys.stdout.reconfigure(errors="backslashreplace")
    with open(SCHEMA_PATH, "rb") as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)

    error_count = 0

    def report(name, lineno, message):
        nonlocal error_count
        error_count += 1
        print(f"{name}:{lineno}: {message}")

    total = 0
    for name in argv[1:]:
        total += validate_file(name, validator, report)
    print(f"validated {total} records, {error_count} errors")
    return 1 if error_count else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
