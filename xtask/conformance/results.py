"""Reads a subunit v2 stream (stestr's `last --subunit`) on stdin and prints one JSON object per
test: {"id", "status", "reason"}: the skip reason for a skip, the last line of the traceback for
a failure. Run with the conformance environment's Python, which has python-subunit and testtools.
"""

import json
import sys

import subunit
import testtools


def text(details, name):
    content = details.get(name)
    return content.as_text() if content is not None else ""


def emit(test):
    details = test["details"]
    if test["status"] == "skip":
        reason = text(details, "reason")
    elif test["status"] == "fail":
        lines = [line for line in text(details, "traceback").splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else ""
    else:
        reason = ""
    print(json.dumps({"id": test["id"], "status": test["status"], "reason": reason}))


def main():
    stream = subunit.ByteStreamToStreamResult(sys.stdin.buffer, non_subunit_name="stdout")
    result = testtools.StreamToDict(emit)
    result.startTestRun()
    try:
        stream.run(result)
    finally:
        result.stopTestRun()


if __name__ == "__main__":
    main()
