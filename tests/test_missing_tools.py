"""A test skipped for a missing tool is counted in the run's last line, with the command to run."""

import pytest

pytest_plugins = ["pytester"]
# The plugin under test, and none of the suite's own (Django's test setup runs once per process).
PLUGINS = ("-p", "tests.missing_tools", "-p", "no:django", "-p", "no:asyncio")


def test_the_run_ends_with_the_tests_skipped_for_a_missing_tool(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        import pytest
        from tests.missing_tools import missing_tool, needs

        @needs("no-such-command-anywhere", "chromium")
        def test_browser(): pass

        def test_cluster(): pytest.skip(missing_tool("nginx"))

        def test_other(): pytest.skip("not today")

        def test_fine(): pass
        """
    )

    result = pytester.runpytest(*PLUGINS)

    result.assert_outcomes(passed=1, skipped=3)
    assert result.outlines[-1] == (
        "2 tests skipped for a missing tool (chromium, nginx): `make test-deps` installs them."
    )


def test_a_run_with_no_tool_missing_says_nothing_of_them(pytester: pytest.Pytester):
    pytester.makepyfile("def test_fine(): pass")

    result = pytester.runpytest(*PLUGINS)

    assert not [line for line in result.outlines if "missing tool" in line]
