"""The drift report: one self-contained file, escaped, and checked in a real browser."""

from __future__ import annotations

import math
import re
import runpy
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import watchkeeper as wk

# tests/ is not importable under --import-mode=importlib, so the shared fixture is loaded from its file
_browser = runpy.run_path(str(Path(__file__).parents[1] / "browser.py"))
browser, console_errors = _browser["browser"], _browser["console_errors"]
save_screenshot, screenshot_dir = _browser["save_screenshot"], _browser["screenshot_dir"]

RNG = np.random.default_rng(5)


def _result():
    n = 5000
    ref = pd.DataFrame(
        {
            "latency_ms": RNG.lognormal(3, 0.5, n),
            "<script>alert('x')</script>": RNG.normal(size=n),
            "country": RNG.choice(["de", "fr", "<b>us</b>"], n),
            "score": RNG.random(n),
        }
    )
    cur = ref.copy()
    cur["latency_ms"] = RNG.lognormal(3.4, 0.5, n)
    cur["country"] = RNG.choice(["de", "fr", "<b>us</b>"], n, p=[0.6, 0.2, 0.2])
    return wk.drift(ref, cur)


def test_report_is_self_contained_and_escapes_user_strings(tmp_path):
    html = _result().to_html(tmp_path / "drift.html")
    assert (tmp_path / "drift.html").read_text() == html
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "<b>us</b>" not in html and "&lt;b&gt;us&lt;/b&gt;" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched from the network
    assert html.count("<svg") == 4  # one chart per compared column


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_report_renders_in_headless_chromium(tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium); .ci/run installs it")
    res = _result()
    report = tmp_path / "drift.html"
    res.to_html(report)
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    # the DOM after the page loaded: the verdict and the counts it shows match the result
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    assert f"{len(res.drifted_columns)} / {len(res.compared)}" in dom
    assert ("DRIFT" if res.drifted else "no drift") in dom
    shot = screenshot_dir(tmp_path) / "drift-report.png"
    subprocess.run(
        [chromium, *flags, f"--screenshot={shot}", "--window-size=1280,1600", report.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 20_000  # a rendered page, not a blank one


def _many_columns():
    """Eight columns whose statistics and effects all differ: numeric shifts of several sizes, a categorical
    and a boolean column, a constant reference that moved (effect ∞) and a column only in the current data
    (not compared: NaN statistic and effect)."""
    rng = np.random.default_rng(11)
    n = 4000
    ref = pd.DataFrame(
        {
            "latency_ms": rng.lognormal(3, 0.5, n),
            "queue_depth": rng.normal(10, 2, n),
            "score": rng.random(n),
            "country": rng.choice(["de", "fr", "us"], n),
            "<script>alert('x')</script>": rng.normal(size=n),
            "is_mobile": rng.random(n) < 0.3,
            "retries": np.zeros(n),
        }
    )
    cur = pd.DataFrame(
        {
            "latency_ms": rng.lognormal(3.4, 0.5, n),
            "queue_depth": rng.normal(10.3, 2, n),
            "score": rng.random(n),
            "country": rng.choice(["de", "fr", "us"], n, p=[0.5, 0.25, 0.25]),
            "<script>alert('x')</script>": rng.normal(0.1, 1, n),
            "is_mobile": rng.random(n) < 0.45,
            "retries": rng.choice([0.0, 1.0], n, p=[0.9, 0.1]),
            "new_feature": rng.random(n),
        }
    )
    return wk.drift(ref, cur)


def test_report_table_sorts_when_headers_are_clicked(browser, tmp_path):
    from selenium.webdriver.common.by import By

    res = _many_columns()
    table = res.table()
    for column in ("statistic", "p_value", "effect"):  # no ties: each sort has exactly one right answer
        assert table[column].dropna().is_unique and table[column].isna().sum() == 1
    assert math.isinf(table.loc["retries", "effect"])

    def expected(column: str, ascending: bool) -> list[str]:
        # the sorter ranks a missing number (a column not compared) below every number
        ordered = table.sort_values(column, ascending=ascending, na_position="first" if ascending else "last")
        return ordered.index.tolist()

    def rows() -> list[str]:
        return browser.execute_script(
            "return Array.from(document.querySelectorAll('#columns tbody tr'), r => r.cells[0].textContent);"
        )

    def header(text: str):
        return browser.find_element(By.XPATH, f"//table[@id='columns']//th[normalize-space()='{text}']")

    report = tmp_path / "drift.html"
    res.to_html(report)
    browser.get(report.as_uri())
    assert rows() == expected("effect", ascending=False)  # the report opens with the largest effect first

    header("effect").click()
    ascending = rows()
    assert ascending == expected("effect", ascending=True)
    assert ascending[0] == "new_feature" and ascending[-1] == "retries"  # NaN first, ∞ last
    assert header("effect").get_attribute("class") == "sorted-asc"
    shot = save_screenshot(browser, "drift-report-sorted-by-effect", tmp_path)

    header("effect").click()
    assert rows() == expected("effect", ascending=False) == ascending[::-1]
    assert header("effect").get_attribute("class") == "sorted-desc"

    header("statistic").click()  # another column's values: KS for numeric, chi-square for the others
    assert rows() == expected("statistic", ascending=True)
    assert header("statistic").get_attribute("class") == "sorted-asc"
    assert header("effect").get_attribute("class") == ""  # one sorted column at a time

    header("p-value").click()  # 1.2e-98 < 0.9: compared as numbers, not as the strings "1.2e-98" > "0.9"
    assert rows() == expected("p_value", ascending=True)

    # Python's code-point order; the page's localeCompare agrees on these lowercase names and on "<"
    header("column").click()
    assert rows() == sorted(table.index)
    header("column").click()
    assert rows() == sorted(table.index, reverse=True)

    errors = console_errors(browser)
    if errors is not None:
        assert errors == []
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_names_that_start_with_digits_sort_as_text_and_keyboard_sorts_too(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    n = 500
    ref = pd.DataFrame({name: RNG.normal(size=n) for name in ("2024_q2", "2024_q1", "1e3_rows", "b", "a10")})
    res = wk.drift(ref, ref + RNG.normal(0, 0.1, size=ref.shape))
    report = tmp_path / "drift.html"
    res.to_html(report)
    browser.get(report.as_uri())
    th = browser.find_element(By.XPATH, "//table[@id='columns']//th[normalize-space()='column']")
    th.click()
    names = browser.execute_script(
        "return Array.from(document.querySelectorAll('#columns tbody tr'), r => r.cells[0].textContent);"
    )
    assert names == ["1e3_rows", "2024_q1", "2024_q2", "a10", "b"]  # text: "2024_q1" is not the number 2024
    assert th.get_attribute("aria-sort") == "ascending"
    th.send_keys(Keys.ENTER)
    assert th.get_attribute("aria-sort") == "descending"
    assert (
        browser.execute_script(
            "return Array.from(document.querySelectorAll('#columns tbody tr'), r => r.cells[0].textContent);"
        )
        == names[::-1]
    )
