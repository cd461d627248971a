"""TEMPORARY (not committed): the schemathesis test restricted to the filesystem and watch paths."""

from typing import Any

import hypothesis
import hypothesis.errors
import pytest
from schemathesis import GenerationMode

from . import test_schemathesis as base
from .test_schemathesis import fuzzed  # noqa: F401

pytestmark = [pytest.mark.timeout(900)]


def test_mine(fuzzed):  # noqa: F811
    schema = base.load_schema(fuzzed)
    operations = [r.ok() for r in schema.get_all_operations()]
    operations = [o for o in operations if o.path.startswith(("/filesystem", "/watch"))]
    print(len(operations), "operations")
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hypothesis.seed(base.SEED)
            @hypothesis.settings(
                max_examples=base.MAX_EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(hypothesis.HealthCheck),
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                report_multiple_bugs=False,
            )
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                base.exercise(case, fuzzed)

            try:
                run()
            except (KeyboardInterrupt, SystemExit, pytest.fail.Exception):
                raise
            except hypothesis.errors.Unsatisfiable:
                continue
            except BaseException as e:
                failures.append(f"{operation.label} [{mode.value}]: {type(e).__name__}: {e}")
    for label, statuses in base.STATUSES.items():
        print(f"{label:55} {dict(sorted(statuses.items()))}")
    assert not failures, f"{len(failures)} operation(s) misbehave:\n\n" + "\n\n".join(failures)
