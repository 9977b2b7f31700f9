"""A new user after `make run`: logs in to the Airflow UI in a real browser (Debian's
headless Chromium, driven by Selenium through Debian's chromedriver), opens "DICOM jobs"
from the navigation, sees the demo patient's delivered job with its turnaround plot,
opens it, sees the patient's name only after asking, resends it and sees the new job.

Screenshots of each page go to the test's tmp folder and to var/test-artifacts/jobs-page/
(the README's screenshot, docs/jobs-page.png, is the jobs table from such a run)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import IN_CI, REPO_ROOT
from tests.support.stack import RunningStack, start_stack

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = REPO_ROOT / "var" / "test-artifacts" / "jobs-page"


@pytest.fixture
def browser():
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            message = f"{path} is missing (make test installs chromium and chromium-driver)"
            pytest.fail(message) if IN_CI else pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--disable-gpu"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def _admin_password(stack: RunningStack) -> str:
    path = stack.data_root / "airflow" / "simple_auth_manager_passwords.json.generated"
    return json.loads(path.read_text())["admin"]


def _wait_for_delivered_demo_job(stack: RunningStack, password: str, timeout: float) -> int:
    token = requests.post(f"{stack.api_url}/auth/token", timeout=10,
                          json={"username": "admin", "password": password}).json()["access_token"]
    deadline = time.monotonic() + timeout
    jobs: list = []
    while time.monotonic() < deadline:
        jobs = requests.get(f"{stack.api_url}/dicom-ops/api/jobs?status=finished", timeout=10,
                            headers={"Authorization": f"Bearer {token}"}).json()["jobs"]
        if jobs:
            return jobs[0]["id"]
        time.sleep(3)
    raise AssertionError(f"no delivered job after {timeout}s:\n{stack.log()[-4000:]}")


def _heading_of_a_job_page(driver, by) -> str | bool:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        text = driver.find_element(by.TAG_NAME, "h1").text
    except StaleElementReferenceException:
        return False
    return text if text.startswith("Job ") else False


def test_a_new_user_finds_the_demo_job_resends_it_and_sees_the_new_job(tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    shots = tmp_path / "artifacts"
    shots.mkdir()

    def screenshot(name: str) -> None:
        browser.save_screenshot(str(shots / f"{name}.png"))

    def frame_screenshot(name: str) -> None:
        """The page inside the frame, as a whole (the frame scrolls, the window does not)."""
        browser.find_element(By.TAG_NAME, "body").screenshot(str(shots / f"{name}.png"))

    stack = start_stack(tmp_path / "var")
    try:
        stack.wait_healthy(timeout=300)
        password = _admin_password(stack)
        demo_job = _wait_for_delivered_demo_job(stack, password, timeout=240)
        wait = WebDriverWait(browser, 60)

        # log in: the Airflow UI sends an anonymous visitor to its login form
        browser.get(f"{stack.api_url}/")
        wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
        browser.find_element(By.NAME, "password").send_keys(password)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

        # the navigation has "DICOM jobs"; it opens the page inside the Airflow UI
        wait.until(ec.element_to_be_clickable((By.LINK_TEXT, "DICOM jobs"))).click()
        frame = wait.until(ec.presence_of_element_located(
            (By.CSS_SELECTOR, "iframe[title='DICOM jobs']")))
        browser.switch_to.frame(frame)
        row = wait.until(ec.presence_of_element_located(
            (By.CSS_SELECTOR, f"tr[data-job-id='{demo_job}']")))
        assert "finished" in row.text and "Thorax OARs" in row.text
        assert browser.find_elements(By.CSS_SELECTOR, "#plot-turnaround svg circle.job")
        assert browser.find_elements(By.CSS_SELECTOR, "#plot-turnaround svg line.p50")
        browser.switch_to.default_content()
        screenshot("1-jobs")
        browser.switch_to.frame(frame)

        # the job: its stages, the delivered file, its Airflow tasks, a pseudonym only
        row.find_element(By.LINK_TEXT, str(demo_job)).click()
        wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), f"Job {demo_job}"))
        assert "RS." in browser.find_element(By.ID, "delivered-file").text
        tasks = browser.find_element(By.ID, "tasks").text
        assert "draw_export" in tasks and "draw_import" in tasks
        pseudonym = browser.find_element(By.ID, "patient").text
        assert pseudonym.startswith("DRAW-")
        before_asking = browser.page_source
        frame_screenshot("2-job")

        # the name and ID only on demand (a POST: nothing in the URL)
        browser.find_element(By.ID, "show-patient").click()
        patient = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#patient .patient")))
        assert " · ID " in patient.text
        assert patient.text.split(" · ID ")[0] not in pseudonym
        # the Airflow UI keeps its own settings in the origin's storage: none holds the patient
        stored = browser.execute_script(
            "return JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage),"
            " document.cookie])")
        name, patient_id = patient.text.split(" · ID ")
        patient_id = patient_id.split()[0]
        assert name not in stored and patient_id not in stored
        assert name not in before_asking and patient_id not in before_asking
        assert patient_id not in browser.current_url
        frame_screenshot("3-patient")

        # resend, confirmed on a page of its own, and the new job appears
        browser.find_element(By.ID, "resend").click()
        wait.until(ec.presence_of_element_located((By.ID, "confirm")))
        frame_screenshot("4-confirm")
        browser.find_element(By.ID, "confirm").click()
        heading = wait.until(lambda driver: _heading_of_a_job_page(driver, By))
        new_job = int(heading.split()[1])
        assert new_job > demo_job
        events = browser.find_element(By.ID, "events").text
        assert "ui:admin" in events and "created" in events
        browser.find_element(By.LINK_TEXT, "Jobs").click()
        new_row = wait.until(ec.presence_of_element_located(
            (By.CSS_SELECTOR, f"tr[data-job-id='{new_job}']")))
        assert f"resend of {demo_job}" in new_row.text
        browser.switch_to.default_content()
        screenshot("5-jobs-after-resend")
        browser.switch_to.frame(frame)

        browser.find_element(By.LINK_TEXT, "Series not sent").click()
        wait.until(ec.presence_of_element_located((By.ID, "series")))
        frame_screenshot("6-series")
    finally:
        code = stack.stop()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for shot in shots.glob("*.png"):
            shutil.copy(shot, ARTIFACTS / shot.name)
    assert code == 0
    # make run's console: our processes and one line per event, Airflow's flood in its file
    console = stack.log()
    assert f"job {demo_job}" in console and "delivered: processing -> finished" in console
    assert "ready: 30 instances" in console
    airflow_lines = [line for line in console.splitlines() if line.startswith("airflow ")]
    assert airflow_lines == [f"airflow    | output in {stack.data_root / 'logs' / 'airflow.log'}"]
    assert "scheduler" in stack.airflow_log()
    assert sorted(p.name for p in shots.glob("*.png")) == [
        "1-jobs.png", "2-job.png", "3-patient.png", "4-confirm.png", "5-jobs-after-resend.png",
        "6-series.png"]
